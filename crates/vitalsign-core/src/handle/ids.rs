//! A request's ids, kept inline in its scope: its request id and, when it sent a valid
//! `traceparent`, its trace context, in 63 bytes (the space an `Option<RequestId>` and the
//! scope's padding took before), so that a request in flight still fits in two cache lines
//! and is moved without a call to `memcpy`.

use crate::{RequestId, TraceContext};

/// `id_len` of no request id.
const NO_ID: u8 = u8::MAX;
/// Where the trace's bytes start: after the longest request id kept alongside a trace (a UUID's
/// 36 characters; a trace id as request id takes 32).
const TRACE_AT: usize = 36;
/// Trace id, span id, flags.
const TRACE_LEN: usize = 16 + 8 + 1;

/// A request id (its text in `buf[..id_len]`) and a trace context (in `buf[TRACE_AT..]` when
/// `traced`). A trace that arrives with an `x-request-id` longer than [`TRACE_AT`] is not kept
/// (the request id wins).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ids {
    buf: [u8; TRACE_AT + TRACE_LEN],
    id_len: u8,
    traced: bool,
}

impl Ids {
    #[inline]
    pub(crate) fn new(request_id: Option<RequestId>, trace: Option<TraceContext>) -> Ids {
        let mut ids = Ids {
            buf: [0; TRACE_AT + TRACE_LEN],
            id_len: NO_ID,
            traced: false,
        };
        if let Some(id) = request_id {
            ids.set_request_id(id);
        }
        if let Some(trace) = trace {
            if ids.id_len == NO_ID || usize::from(ids.id_len) <= TRACE_AT {
                ids.buf[TRACE_AT..TRACE_AT + 16].copy_from_slice(&trace.trace_id());
                ids.buf[TRACE_AT + 16..TRACE_AT + 24].copy_from_slice(&trace.span_id());
                ids.buf[TRACE_AT + 24] = trace.flags();
                ids.traced = true;
            }
        }
        ids
    }

    /// The request id, if there is one yet.
    #[inline]
    pub(crate) fn request_id(&self) -> Option<RequestId> {
        (self.id_len != NO_ID).then(|| {
            let mut buf = [0u8; RequestId::MAX_LEN];
            buf.copy_from_slice(&self.buf[..RequestId::MAX_LEN]);
            RequestId::from_parts(buf, self.id_len)
        })
    }

    /// Sets the request id; a trace kept where a longer id goes is dropped.
    #[inline]
    pub(crate) fn set_request_id(&mut self, id: RequestId) {
        let (buf, len) = id.parts();
        if usize::from(len) <= TRACE_AT {
            // The trace's bytes, if any, stay.
            self.buf[..TRACE_AT].copy_from_slice(&buf[..TRACE_AT]);
        } else {
            self.buf[..RequestId::MAX_LEN].copy_from_slice(buf);
            self.traced = false;
        }
        self.id_len = len;
    }

    /// Whether the request sent a valid trace context (and it was kept).
    #[inline]
    pub(crate) fn is_traced(&self) -> bool {
        self.traced
    }

    /// The trace context, if the request sent a valid one (and it was kept).
    #[inline]
    pub(crate) fn trace(&self) -> Option<TraceContext> {
        if !self.traced {
            return None;
        }
        let mut trace_id = [0u8; 16];
        let mut span_id = [0u8; 8];
        trace_id.copy_from_slice(&self.buf[TRACE_AT..TRACE_AT + 16]);
        span_id.copy_from_slice(&self.buf[TRACE_AT + 16..TRACE_AT + 24]);
        TraceContext::new(trace_id, span_id, self.buf[TRACE_AT + 24])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace() -> TraceContext {
        TraceContext::new([7; 16], [9; 8], 1).unwrap()
    }

    #[test]
    fn ids_and_traces_share_the_buffer() {
        assert_eq!(std::mem::size_of::<Ids>(), 63);
        let none = Ids::new(None, None);
        assert_eq!((none.request_id(), none.trace()), (None, None));

        let uuid = RequestId::generate();
        let both = Ids::new(Some(uuid), Some(trace()));
        assert_eq!(both.request_id(), Some(uuid));
        assert_eq!(both.trace(), Some(trace()));

        let from_trace = Ids::new(Some(trace().request_id()), Some(trace()));
        assert_eq!(from_trace.request_id().unwrap().as_str(), "07".repeat(16));
        assert_eq!(from_trace.trace(), Some(trace()));

        // Generated later (a handler asked): the trace stays.
        let mut later = Ids::new(None, Some(trace()));
        later.set_request_id(uuid);
        assert_eq!(
            (later.request_id(), later.trace()),
            (Some(uuid), Some(trace()))
        );

        // An id longer than a UUID takes the trace's place.
        let long = RequestId::from_header(Some(&[b'x'; RequestId::MAX_LEN])).unwrap();
        let kept = Ids::new(Some(long), Some(trace()));
        assert_eq!((kept.request_id(), kept.trace()), (Some(long), None));
        let exactly = RequestId::from_header(Some(&[b'y'; TRACE_AT])).unwrap();
        let both = Ids::new(Some(exactly), Some(trace()));
        assert_eq!(
            (both.request_id(), both.trace()),
            (Some(exactly), Some(trace()))
        );
    }
}
