use std::io::Read;
use std::io::Result as IoResult;
use std::sync::mpsc::channel;
use std::sync::mpsc::{Receiver, Sender};

/// A `Reader` that reads exactly the number of bytes from a sub-reader.
///
/// If the limit is reached, it returns EOF. If the limit is not reached
/// when the destructor is called, the remaining bytes will be read and
/// thrown away.
pub struct EqualReader<R>
where
    R: Read,
{
    reader: R,
    size: usize,
    last_read_signal: Sender<IoResult<()>>,
    // postd patch: false for bodies the connection gives up on (it closes after them).
    drain_on_drop: bool,
}

impl<R> EqualReader<R>
where
    R: Read,
{
    pub fn new(reader: R, size: usize) -> (EqualReader<R>, Receiver<IoResult<()>>) {
        let (tx, rx) = channel();

        let r = EqualReader {
            reader,
            size,
            last_read_signal: tx,
            drain_on_drop: true,
        };

        (r, rx)
    }

    /// postd patch: a reader whose unread rest is left in the socket when dropped; the
    /// connection must then be closed, not reused.
    pub fn new_undrained(reader: R, size: usize) -> (EqualReader<R>, Receiver<IoResult<()>>) {
        let (mut r, rx) = EqualReader::new(reader, size);
        r.drain_on_drop = false;
        (r, rx)
    }
}

impl<R> Read for EqualReader<R>
where
    R: Read,
{
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        if self.size == 0 {
            return Ok(0);
        }

        let buf = if buf.len() < self.size {
            buf
        } else {
            &mut buf[..self.size]
        };

        match self.reader.read(buf) {
            Ok(len) => {
                self.size -= len;
                Ok(len)
            }
            err @ Err(_) => err,
        }
    }
}

impl<R> Drop for EqualReader<R>
where
    R: Read,
{
    fn drop(&mut self) {
        if !self.drain_on_drop {
            return;
        }
        // postd patch: the unread rest of a body used to be drained through a buffer as
        // large as that rest (a 100 MB Content-Length meant 100 MB allocations) and to the
        // end. Now a fixed buffer, and at most DRAIN_LIMIT bytes: past that the connection
        // is not worth keeping, and the next read on it fails and closes it.
        const DRAIN_LIMIT: usize = 1024 * 1024;
        let mut remaining_to_read = self.size.min(DRAIN_LIMIT);
        let mut buf = [0u8; 16 * 1024];

        while remaining_to_read > 0 {
            let want = remaining_to_read.min(buf.len());
            match self.reader.read(&mut buf[..want]) {
                Err(e) => {
                    self.last_read_signal.send(Err(e)).ok();
                    break;
                }
                Ok(0) => {
                    self.last_read_signal.send(Ok(())).ok();
                    break;
                }
                Ok(other) => {
                    remaining_to_read -= other;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::EqualReader;
    use std::io::Read;

    #[test]
    fn test_limit() {
        use std::io::Cursor;

        let mut org_reader = Cursor::new("hello world".to_string().into_bytes());

        {
            let (mut equal_reader, _) = EqualReader::new(org_reader.by_ref(), 5);

            let mut string = String::new();
            equal_reader.read_to_string(&mut string).unwrap();
            assert_eq!(string, "hello");
        }

        let mut string = String::new();
        org_reader.read_to_string(&mut string).unwrap();
        assert_eq!(string, " world");
    }

    /// A reader that counts what is read from it.
    struct Counted<'a> {
        left: usize,
        read: &'a mut usize,
        largest_read: &'a mut usize,
    }

    impl Read for Counted<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.left);
            self.left -= n;
            *self.read += n;
            *self.largest_read = (*self.largest_read).max(buf.len());
            Ok(n)
        }
    }

    // postd patch: the unread rest is drained through a fixed buffer, at most 1 MiB of it.
    #[test]
    fn dropping_drains_at_most_1_mib_through_a_small_buffer() {
        let (mut read, mut largest) = (0, 0);
        {
            let source = Counted {
                left: 100 * 1024 * 1024,
                read: &mut read,
                largest_read: &mut largest,
            };
            let _ = EqualReader::new(source, 100 * 1024 * 1024);
        }
        assert_eq!(read, 1024 * 1024);
        assert!(largest <= 16 * 1024, "read {} bytes at once", largest);
    }

    // postd patch: a body the connection gives up on is not drained at all.
    #[test]
    fn an_undrained_reader_reads_nothing_when_dropped() {
        let (mut read, mut largest) = (0, 0);
        {
            let source = Counted {
                left: 1000,
                read: &mut read,
                largest_read: &mut largest,
            };
            let _ = EqualReader::new_undrained(source, 1000);
        }
        assert_eq!(read, 0);
    }

    #[test]
    fn test_not_enough() {
        use std::io::Cursor;

        let mut org_reader = Cursor::new("hello world".to_string().into_bytes());

        {
            let (mut equal_reader, _) = EqualReader::new(org_reader.by_ref(), 5);

            let mut vec = [0];
            equal_reader.read_exact(&mut vec).unwrap();
            assert_eq!(vec[0], b'h');
        }

        let mut string = String::new();
        org_reader.read_to_string(&mut string).unwrap();
        assert_eq!(string, " world");
    }
}
