//! HTTP method policy: the nine standard methods keep their name, everything else is `_OTHER`.
//!
//! This is the OpenTelemetry rule for `http.request.method`: an attacker (or a buggy client) can
//! send any token as a method, so only a closed set of values ever becomes a label.
//!
//! ```
//! use vitalsign_core::Method;
//!
//! assert_eq!(Method::from_bytes(b"GET"), Method::Get);
//! assert_eq!(Method::from_bytes(b"BREW").as_str(), "_OTHER");
//! ```

use std::fmt;

/// A request method as it appears in labels and tags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`
    Head,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `DELETE`
    Delete,
    /// `CONNECT`
    Connect,
    /// `OPTIONS`
    Options,
    /// `TRACE`
    Trace,
    /// `PATCH`
    Patch,
    /// Any other method, reported as `_OTHER`.
    Other,
}

impl Method {
    /// Every value, in a fixed order (the order of [`Method::index`]). A slice, whose length
    /// may grow with the enum.
    pub const ALL: &'static [Method] = &[
        Method::Get,
        Method::Head,
        Method::Post,
        Method::Put,
        Method::Delete,
        Method::Connect,
        Method::Options,
        Method::Trace,
        Method::Patch,
        Method::Other,
    ];

    /// Classifies a method token. Matching is exact (methods are case-sensitive, RFC 9110 §9.1).
    #[inline]
    pub fn from_bytes(method: &[u8]) -> Method {
        // Most requests: one compare of three bytes.
        if method == b"GET" {
            return Method::Get;
        }
        match method {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"CONNECT" => Method::Connect,
            b"OPTIONS" => Method::Options,
            b"TRACE" => Method::Trace,
            b"PATCH" => Method::Patch,
            _ => Method::Other,
        }
    }

    /// The label value: the method name, or `_OTHER`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Connect => "CONNECT",
            Method::Options => "OPTIONS",
            Method::Trace => "TRACE",
            Method::Patch => "PATCH",
            Method::Other => "_OTHER",
        }
    }

    /// Position in [`Method::ALL`], for arrays indexed by method.
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_methods_keep_their_name() {
        for m in Method::ALL.iter().filter(|m| **m != Method::Other) {
            assert_eq!(Method::from_bytes(m.as_str().as_bytes()), *m);
        }
    }

    #[test]
    fn anything_else_is_other() {
        for raw in [&b"get"[..], b"BREW", b"PROPFIND", b"", b"GET ", b"\xff\xfe"] {
            assert_eq!(Method::from_bytes(raw), Method::Other, "{raw:?}");
        }
        assert_eq!(Method::Other.as_str(), "_OTHER");
    }

    #[test]
    fn index_matches_all() {
        for (i, m) in Method::ALL.iter().enumerate() {
            assert_eq!(m.index(), i);
        }
    }
}
