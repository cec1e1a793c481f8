//! Request ids: taken from an incoming `x-request-id` header when it is sane, generated otherwise.
//!
//! A [`RequestId`] lives inline (no heap allocation): at most [`RequestId::MAX_LEN`] bytes.
//!
//! ```
//! use vitalsign_core::RequestId;
//!
//! let id = RequestId::from_header(Some(b"abc-123")).unwrap();
//! assert_eq!(id.as_str(), "abc-123");
//! // A header that is too long or carries odd bytes is not echoed: a fresh id replaces it.
//! assert!(RequestId::from_header(Some(b"has space")).is_none());
//! assert_eq!(RequestId::from_header_or_generate(Some(&[0xff; 3])).as_str().len(), 36);
//! ```

use std::fmt;

/// The request header vitalsign reads request ids from.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// A request id, stored inline.
#[derive(Clone, Copy)]
pub struct RequestId {
    buf: [u8; RequestId::MAX_LEN],
    len: u8,
}

impl RequestId {
    /// The longest incoming id that is kept as is: room for UUIDs (36), ULIDs (26), AWS trace
    /// ids (40) and W3C `traceparent` values (55), while a request in flight stays small enough
    /// to be moved without a call to `memcpy`.
    pub const MAX_LEN: usize = 56;

    /// No id: what points carry when no sink reads ids, no header gave one and the handler
    /// asked for none (none was generated, to save the work).
    pub const EMPTY: RequestId = RequestId {
        buf: [0; Self::MAX_LEN],
        len: 0,
    };

    /// Accepts an incoming header value if it is 1 to [`RequestId::MAX_LEN`] bytes of
    /// `A-Z a-z 0-9` and `- _ . : + = / @` (UUIDs, ULIDs, trace ids, base64). Anything else
    /// (empty, longer, spaces, quotes, control or non-ASCII bytes) is refused.
    pub fn from_header(value: Option<&[u8]>) -> Option<RequestId> {
        let value = value?;
        if value.is_empty() || value.len() > Self::MAX_LEN {
            return None;
        }
        if !value.iter().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(b, b'-' | b'_' | b'.' | b':' | b'+' | b'=' | b'/' | b'@')
        }) {
            return None;
        }
        let mut buf = [0u8; Self::MAX_LEN];
        buf[..value.len()].copy_from_slice(value);
        Some(RequestId {
            buf,
            len: value.len() as u8,
        })
    }

    /// [`RequestId::from_header`], or a fresh random (version 4) UUID.
    pub fn from_header_or_generate(value: Option<&[u8]>) -> RequestId {
        Self::from_header(value).unwrap_or_else(Self::generate)
    }

    /// A fresh random (version 4) UUID in its hyphenated lower-case form.
    pub fn generate() -> RequestId {
        let uuid = uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes()).into_uuid();
        let mut buf = [0u8; Self::MAX_LEN];
        let len = uuid
            .hyphenated()
            .encode_lower(&mut buf[..uuid::fmt::Hyphenated::LENGTH])
            .len();
        RequestId {
            buf,
            len: len as u8,
        }
    }

    /// An id from its buffer (only `buf[..len]` is read: what follows may hold anything) and
    /// length, both from a [`RequestId`] (see [`RequestId::parts`]).
    #[inline]
    pub(crate) fn from_parts(buf: [u8; Self::MAX_LEN], len: u8) -> RequestId {
        RequestId { buf, len }
    }

    /// The buffer and the length of the id.
    #[inline]
    pub(crate) fn parts(&self) -> (&[u8; Self::MAX_LEN], u8) {
        (&self.buf, self.len)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII bytes are ever stored.
        std::str::from_utf8(&self.buf[..self.len as usize]).unwrap_or_default()
    }
}

/// Ids are equal when their text is.
impl PartialEq for RequestId {
    fn eq(&self, other: &Self) -> bool {
        self.buf[..usize::from(self.len)] == other.buf[..usize::from(other.len)]
    }
}

impl Eq for RequestId {}

impl std::hash::Hash for RequestId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.buf[..usize::from(self.len)].hash(state);
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RequestId").field(&self.as_str()).finish()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sane_ids_are_kept() {
        for id in [
            "a",
            "0b5f7c0e-8d4e-4c1a-9a57-2f2d1f1a3b4c",
            "01ARZ3NDEKTSV4RRFFQ69G5FAV",
            "svc:1/2+3=@x_y.z",
        ] {
            assert_eq!(
                RequestId::from_header(Some(id.as_bytes()))
                    .unwrap()
                    .as_str(),
                id
            );
        }
        let max = "x".repeat(RequestId::MAX_LEN);
        assert_eq!(
            RequestId::from_header(Some(max.as_bytes()))
                .unwrap()
                .as_str(),
            max
        );
    }

    /// Regression (review item 13): this asserted that the generated id differs from the
    /// refused input, which a 36-byte UUID always does. Now: the replacement is a fresh
    /// version 4 UUID (not the input cleaned up), a new one for each request.
    #[test]
    fn odd_ids_are_replaced() {
        let long = "x".repeat(RequestId::MAX_LEN + 1);
        for bad in [
            &b""[..],
            long.as_bytes(),
            b"a b",
            b"a\"b",
            b"a\nb",
            b"\xc3\xa9",
            b"<script>",
        ] {
            assert!(RequestId::from_header(Some(bad)).is_none(), "{bad:?}");
            let generated = RequestId::from_header_or_generate(Some(bad));
            let uuid = uuid::Uuid::try_parse(generated.as_str()).expect("a UUID replaces it");
            assert_eq!(
                uuid.get_version(),
                Some(uuid::Version::Random),
                "{generated}"
            );
            assert_eq!(generated.as_str(), uuid.hyphenated().to_string());
            assert_ne!(RequestId::from_header_or_generate(Some(bad)), generated);
        }
        assert!(RequestId::from_header(None).is_none());
    }

    #[test]
    fn generated_ids_are_uuid_v4_and_distinct() {
        let a = RequestId::generate();
        let b = RequestId::generate();
        assert_ne!(a, b);
        let s = a.as_str();
        assert_eq!(s.len(), 36);
        assert_eq!(s.as_bytes()[14], b'4', "{s}");
        assert_eq!(s.matches('-').count(), 4);
    }
}
