//! The demo's gRPC service `demo.v1.Greeter` (`demo.proto`), generated at build time: the
//! messages, the client (`greeter_client`), the server (`greeter_server`) and [`METHODS`].

#![allow(missing_docs, unreachable_pub, missing_debug_implementations)]
#![allow(clippy::all)]

tonic::include_proto!("demo.v1");

include!(concat!(env!("OUT_DIR"), "/methods.rs"));
