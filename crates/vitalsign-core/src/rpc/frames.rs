//! [`MessageCounter`]: counts gRPC messages from their 5-byte prefixes as the bytes pass.

/// Counts the messages of one direction of a gRPC call from the bytes as they pass: each
/// message is a 5-byte prefix (a compression flag, then the length, big-endian `u32`) followed
/// by that many bytes. Nothing is decoded, copied or allocated; the prefix may be split
/// across chunks. A message is counted once its prefix has passed.
///
/// ```
/// use vitalsign_core::rpc::MessageCounter;
///
/// let mut counter = MessageCounter::default();
/// assert_eq!(counter.feed(&[0, 0, 0, 0, 2, 7]), 1); // a prefix and half the message
/// assert_eq!(counter.feed(&[7, 1, 0, 0]), 0); // the rest, and part of a prefix
/// assert_eq!(counter.feed(&[0, 0]), 1); // the prefix's end: an empty message
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MessageCounter {
    /// Bytes of the current prefix seen (0 to 4).
    prefix: u8,
    /// The length bytes of the current prefix seen so far.
    length: u32,
    /// Bytes of the current message still to pass.
    skip: u64,
}

impl MessageCounter {
    /// Feeds the next bytes of the stream; returns how many message prefixes they completed.
    pub fn feed(&mut self, mut data: &[u8]) -> u32 {
        let mut messages = 0;
        while !data.is_empty() {
            if self.skip > 0 {
                let take = usize::try_from(self.skip).map_or(data.len(), |s| s.min(data.len()));
                self.skip -= take as u64;
                data = &data[take..];
                continue;
            }
            let byte = data[0];
            data = &data[1..];
            if self.prefix > 0 {
                self.length = self.length << 8 | u32::from(byte);
            }
            self.prefix += 1;
            if self.prefix == 5 {
                messages += 1;
                self.skip = u64::from(self.length);
                self.prefix = 0;
                self.length = 0;
            }
        }
        messages
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(len: u32) -> Vec<u8> {
        let mut bytes = vec![0];
        bytes.extend_from_slice(&len.to_be_bytes());
        bytes.extend(std::iter::repeat_n(9u8, len as usize));
        bytes
    }

    #[test]
    fn messages_are_counted_however_the_stream_is_split() {
        let wire: Vec<u8> = [0, 1, 300, 70000, 5]
            .into_iter()
            .flat_map(message)
            .collect();
        for chunk in [1, 2, 3, 4, 5, 6, 7, 64, 1000, wire.len()] {
            let mut counter = MessageCounter::default();
            let n: u32 = wire.chunks(chunk).map(|c| counter.feed(c)).sum();
            assert_eq!(n, 5, "chunks of {chunk}");
            assert_eq!(counter, MessageCounter::default(), "ends between messages");
        }
    }

    #[test]
    fn a_length_prefix_with_its_high_byte_set_is_skipped_whole() {
        let mut counter = MessageCounter::default();
        assert_eq!(counter.feed(&[1, 0x80, 0, 0, 0]), 1);
        assert_eq!(counter.skip, 0x8000_0000);
        assert_eq!(counter.feed(&[0; 64]), 0);
    }
}
