//! The bearer token that guards vitalsign's endpoints.

use std::fmt;

/// A bearer token, never printed.
#[derive(Clone)]
pub(crate) struct Secret(Box<[u8]>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// The secret of this token.
    pub(crate) fn new(token: String) -> Self {
        Secret(token.into_bytes().into_boxed_slice())
    }

    /// Whether an `Authorization` header value is `Bearer <this token>` (constant time in the
    /// token's bytes).
    pub(crate) fn authorizes(&self, authorization: Option<&[u8]>) -> bool {
        use subtle::ConstantTimeEq;
        let Some(value) = authorization else {
            return false;
        };
        let Some(given) = value
            .strip_prefix(b"Bearer ")
            .or_else(|| value.strip_prefix(b"bearer "))
        else {
            return false;
        };
        bool::from(given.ct_eq(&self.0))
    }
}
