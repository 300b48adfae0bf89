use std::io::Error as IoError;
use std::io::{self, Cursor, ErrorKind, Read, Write};

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use std::sync::mpsc::Sender;

use crate::client::ConnState;
use crate::response::Framing;
use crate::settings::Transport;
use crate::util::{ChunkedDecoder, EqualReader, FusedReader};
use crate::{HTTPVersion, Header, Method, Response, StatusCode};
use std::sync::Arc;

/// Represents an HTTP request made by a client.
///
/// A `Request` object is what is produced by the server, and is your what
/// your code must analyse and answer.
///
/// This object implements the `Send` trait, therefore you can dispatch your requests to
/// worker threads.
///
/// # Pipelining
///
/// If a client sends multiple requests in a row (without waiting for the response), then you will
/// get multiple `Request` objects simultaneously. This is called *requests pipelining*.
/// Tiny-http automatically reorders the responses so that you don't need to worry about the order
/// in which you call `respond` or `into_writer`.
///
/// This mechanic is disabled if:
///
///  - The body of a request is large enough (handling requires pipelining requires storing the
///    body of the request in a buffer ; if the body is too big, tiny-http will avoid doing that)
///  - A request sends a `Expect: 100-continue` header (which means that the client waits to
///    know whether its body will be processed before sending it)
///  - A request sends a `Connection: close` header or `Connection: upgrade` header (used for
///    websockets), which indicates that this is the last request that will be received on this
///    connection
///
/// # Automatic cleanup
///
/// If a `Request` object is destroyed without `into_writer` or `respond` being called,
/// an empty response with a 500 status code (internal server error) will automatically be
/// sent back to the client.
/// This means that if your code fails during the handling of a request, this "internal server
/// error" response will automatically be sent during the stack unwinding.
///
/// # Testing
///
/// If you want to build fake requests to test your server, use [`TestRequest`](crate::test::TestRequest).
pub struct Request {
    // where to read the body from
    data_reader: Option<BodyReader>,

    // if this writer is empty, then the request has been answered
    response_writer: Option<Box<dyn Write + Send + 'static>>,

    remote_addr: Option<SocketAddr>,

    // true if HTTPS, false if HTTP
    secure: bool,

    method: Method,

    path: String,

    http_version: HTTPVersion,

    headers: Vec<Header>,

    body_length: Option<usize>,

    // true if a `100 Continue` response must be sent when `as_reader()` is called
    must_send_continue: bool,

    // postd patch: the body (if any) is all in memory, read ahead or empty: reading it
    // never touches the socket.
    body_in_memory: bool,

    // postd patch: the body was left unread (too large to read ahead), so nothing after it
    // on this connection can be parsed; the connection closes after the response.
    pub(crate) abandons_body: bool,

    // postd patch: the server's settings (the headers every response carries).
    transport: Arc<Transport>,

    // postd patch: the connection closes after this request's response (the client asked
    // for it, or its body was left unread), so the response says `Connection: close`.
    pub(crate) closes_connection: bool,

    // postd patch: an HTTP/1.0 client asked to keep the connection open and it stays open.
    pub(crate) keep_alive: bool,

    // postd patch: the connection this request came on (None for a `TestRequest`).
    pub(crate) conn: Option<Arc<ConnState>>,

    // If Some, a message must be sent after responding
    notify_when_responded: Option<Sender<()>>,
}

/// postd patch: a body read ahead is kept as what it is, so that the application can take
/// its bytes without copying them (`Request::read_ahead_body`); it held a second copy of
/// every body for as long as its request lived.
enum BodyReader {
    // Boxed: a `Request` travels by value through the server's queue.
    ReadAhead(Box<preread::Held>),
    Other(Box<dyn Read + Send + 'static>),
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            BodyReader::ReadAhead(held) => held.read(buf),
            BodyReader::Other(reader) => reader.read(buf),
        }
    }
}

struct NotifyOnDrop<R> {
    sender: Sender<()>,
    inner: R,
}

impl<R: Read> Read for NotifyOnDrop<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}
impl<R: Write> Write for NotifyOnDrop<R> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
impl<R> Drop for NotifyOnDrop<R> {
    fn drop(&mut self) {
        self.sender.send(()).unwrap();
    }
}

/// Error that can happen when building a `Request` object.
#[derive(Debug)]
pub enum RequestCreationError {
    /// The client sent an `Expect` header that was not recognized by tiny-http.
    ExpectationFailed,

    /// Error while reading data from the socket during the creation of the `Request`.
    CreationIoError(IoError),

    /// postd patch: the body did not arrive at the minimum rate while it was read ahead.
    BodyTooSlow,

    /// postd patch: the message framing is refused. (status, title, detail)
    Refused(u16, &'static str, &'static str),

    /// postd patch: the read-ahead budget has no room for this body (503, retry later).
    Busy,
}

impl From<IoError> for RequestCreationError {
    fn from(err: IoError) -> RequestCreationError {
        RequestCreationError::CreationIoError(err)
    }
}

/// postd patch: answers `Expect: 100-continue` before the body is read ahead.
fn send_continue<W: Write>(
    writer: &mut W,
    version: &HTTPVersion,
    headers: &[Header],
    transport: &Transport,
) {
    let msg = Response::new_empty(StatusCode(100));
    msg.raw_print_framed(
        writer.by_ref(),
        version.clone(),
        headers,
        true,
        None,
        &transport.framing(false),
    )
    .ok();
    writer.flush().ok();
}

/// postd patch: reading request bodies ahead of the application, bounded in size, time
/// and total memory.
pub mod preread {
    use crate::settings::Transport;
    use std::io::{self, Cursor, ErrorKind, Read};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    /// Time any body gets before the minimum rate applies.
    const GRACE: Duration = Duration::from_secs(10);
    /// Slowest acceptable body after the grace period, bytes per second.
    const MIN_RATE: f64 = 64.0 * 1024.0;
    const STEP: usize = 16 * 1024;

    /// The application's body limit: larger bodies are not read (nor drained). Sets
    /// `body_limit` of the default [`crate::Settings`] (servers created afterwards).
    pub fn set_limit(bytes: usize) {
        crate::settings::update_default(|settings| settings.body_limit = bytes);
    }

    /// A body read ahead; gives its bytes back to the budget when dropped.
    pub(crate) struct Held {
        data: Cursor<Vec<u8>>,
        reserved: usize,
        transport: Arc<Transport>,
    }

    impl Held {
        /// The bytes not read yet, taken out without a copy. Their reservation stays until
        /// the request is dropped: the application holds them until then.
        pub(crate) fn take_unread(&mut self) -> Vec<u8> {
            let read = self.data.position() as usize;
            let mut bytes = std::mem::take(self.data.get_mut());
            self.data.set_position(0);
            bytes.drain(..read.min(bytes.len()));
            bytes
        }
    }

    impl Read for Held {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.data.read(buf)
        }
    }

    impl Drop for Held {
        fn drop(&mut self) {
            self.transport.release(self.reserved);
        }
    }

    /// Reads up to `max` bytes of `source` now (exactly `max` when `exact`: a declared
    /// Content-Length, where an early end is an error). Returns the body as a reader, and
    /// whether all of it was read here (false: `max` bytes were read and more may follow,
    /// so the connection can not be reused after this request).
    ///
    /// A declared length is reserved from the budget whole before anything is read; an
    /// undeclared (chunked) body reserves as it arrives. A body that does not fit is
    /// refused (`Busy`): it used to stream to the application's worker instead, where a
    /// slow client could hold the worker.
    pub(crate) fn read_ahead<R: Read + Send + 'static>(
        mut source: R,
        max: usize,
        exact: bool,
        transport: &Arc<Transport>,
    ) -> Result<(Held, bool), super::RequestCreationError> {
        let started = Instant::now();
        if exact && !transport.reserve(max) {
            return Err(super::RequestCreationError::Busy);
        }
        let mut held = Held {
            // A declared length is allocated once: growing by doubling held up to twice it.
            data: Cursor::new(Vec::with_capacity(if exact { max } else { 0 })),
            reserved: if exact { max } else { 0 },
            transport: transport.clone(),
        };
        let mut chunk = [0u8; STEP];
        loop {
            let want = (max - held.data.get_ref().len()).min(STEP);
            if want == 0 {
                // A declared length read in full is the whole body; an undeclared one that
                // reached `max` may go on.
                return Ok((held, exact));
            }
            let read = match source.read(&mut chunk[..want]) {
                Ok(0) if exact => {
                    let info = "Connection has been closed before we received enough data";
                    return Err(super::RequestCreationError::CreationIoError(
                        io::Error::new(ErrorKind::ConnectionAborted, info),
                    ));
                }
                Ok(0) => return Ok((held, true)),
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => 0,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(super::RequestCreationError::BodyTooSlow);
                }
                Err(e) => return Err(super::RequestCreationError::CreationIoError(e)),
            };
            // A chunked body takes from the budget what it is about to keep.
            if !exact {
                if !transport.reserve(read) {
                    return Err(super::RequestCreationError::Busy);
                }
                held.reserved += read;
            }
            held.data.get_mut().extend_from_slice(&chunk[..read]);
            let allowed =
                GRACE + Duration::from_secs_f64(held.data.get_ref().len() as f64 / MIN_RATE);
            if started.elapsed() > allowed {
                return Err(super::RequestCreationError::BodyTooSlow);
            }
        }
    }
}

/// Builds a new request.
///
/// After the request line and headers have been read from the socket, a new `Request` object
/// is built.
///
/// You must pass a `Read` that will allow the `Request` object to read from the incoming data.
/// It is the responsibility of the `Request` to read only the data of the request and not further.
///
/// The `Write` object will be used by the `Request` to write the response.
#[allow(clippy::too_many_arguments)]
pub fn new_request<R, W>(
    secure: bool,
    method: Method,
    path: String,
    version: HTTPVersion,
    headers: Vec<Header>,
    remote_addr: Option<SocketAddr>,
    source_data: R,
    writer: W,
    transport: &Arc<Transport>,
) -> Result<Request, RequestCreationError>
where
    R: Read + Send + 'static,
    W: Write + Send + 'static,
{
    // postd patch: framing that two parties could read differently (the root of request
    // smuggling) is refused: every Transfer-Encoding line counts (a second `gzip` line
    // after `chunked` was ignored), and together they must say exactly `chunked`;
    // Transfer-Encoding with Content-Length; Content-Length values that are not digits
    // only (`+2` parsed as 2) or disagree.
    let mut codings = headers
        .iter()
        .filter(|h: &&Header| h.field.equiv("Transfer-Encoding"));
    let transfer_encoding = codings.next().map(|h| h.value.clone());
    let mut declared_lengths = headers
        .iter()
        .filter(|h: &&Header| h.field.equiv("Content-Length"));
    if let Some(te) = &transfer_encoding {
        if !te.as_str().trim().eq_ignore_ascii_case("chunked") || codings.next().is_some() {
            // 400 rather than RFC 9112's suggested 501: a client's mistake is a 4xx here.
            return Err(RequestCreationError::Refused(
                400,
                "Bad Request",
                "only Transfer-Encoding: chunked is supported",
            ));
        }
        if declared_lengths.next().is_some() {
            return Err(RequestCreationError::Refused(
                400,
                "Bad Request",
                "Transfer-Encoding and Content-Length must not both be sent",
            ));
        }
    } else if let Some(first) = declared_lengths.next() {
        let parse = |h: &Header| {
            let text = h.value.as_str().trim();
            let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
            text.parse::<usize>().ok().filter(|_| digits)
        };
        let first = parse(first);
        if first.is_none() || declared_lengths.any(|h| parse(h) != first) {
            return Err(RequestCreationError::Refused(
                400,
                "Bad Request",
                "the Content-Length header is not one non-negative number",
            ));
        }
    }

    // finding the content-length header
    let content_length = if transfer_encoding.is_some() {
        // if transfer-encoding is specified, the Content-Length
        // header must be ignored (RFC2616 #4.4)
        None
    } else {
        headers
            .iter()
            .find(|h: &&Header| h.field.equiv("Content-Length"))
            .and_then(|h| FromStr::from_str(h.value.as_str()).ok())
    };

    // true if the client sent a `Expect: 100-continue` header
    let expects_continue = {
        match headers
            .iter()
            .find(|h: &&Header| h.field.equiv("Expect"))
            .map(|h| h.value.as_str())
        {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("100-continue") => true,
            _ => return Err(RequestCreationError::ExpectationFailed),
        }
    };

    // true if the client sent a `Connection: upgrade` header
    let connection_upgrade = {
        match headers
            .iter()
            .find(|h: &&Header| h.field.equiv("Connection"))
            .map(|h| h.value.as_str())
        {
            Some(v) if v.to_ascii_lowercase().contains("upgrade") => true,
            _ => false,
        }
    };
    // postd patch: the raw stream is handed over only for a request that can really be
    // upgraded, a GET without a body (a WebSocket handshake). Any other request with
    // `Connection: upgrade` was given the raw stream as its body, with no length: an
    // application reading that body (e.g. a POST) waited on the client, in a worker,
    // until the socket timed out. Such requests now have their body framed and read
    // ahead like any other.
    let connection_upgrade = connection_upgrade
        && method == Method::Get
        && content_length.is_none()
        && transfer_encoding.is_none();

    // postd patch: the body is read here, on the connection's own thread, before the
    // request is handed to the application's bounded worker pool. A client that sends its
    // body slowly then holds only its own connection thread, never a worker. Bodies over
    // the application's limit are not read at all (the application refuses them from
    // Content-Length) and the connection is closed after the answer instead.
    let mut writer = writer;
    let mut must_send_continue = expects_continue;
    let mut abandons_body = false;
    let preread_limit = transport.settings.body_limit;
    let reader = if connection_upgrade {
        // if we have a `Connection: upgrade`, always keeping the whole reader
        BodyReader::Other(Box::new(source_data))
    } else if let Some(content_length) = content_length {
        if content_length == 0 {
            BodyReader::Other(Box::new(io::empty()))
        } else if content_length > preread_limit {
            abandons_body = true;
            let (data_reader, _) = EqualReader::new_undrained(source_data, content_length);
            BodyReader::Other(Box::new(FusedReader::new(data_reader)))
        } else {
            if must_send_continue {
                send_continue(&mut writer, &version, &headers, transport);
                must_send_continue = false;
            }
            // Never drained: on a timeout the rest may be trickling in for minutes. The
            // connection closes instead whenever the body was not read to its end here.
            let (data_reader, _) = EqualReader::new_undrained(source_data, content_length);
            let (reader, complete) = preread::read_ahead(
                FusedReader::new(data_reader),
                content_length,
                true,
                transport,
            )?;
            if !complete {
                abandons_body = true;
            }
            BodyReader::ReadAhead(Box::new(reader))
        }
    } else if transfer_encoding.is_some() {
        // if a transfer-encoding was specified, then "chunked" is ALWAYS applied
        // over the message (RFC2616 #3.6)
        if must_send_continue {
            send_continue(&mut writer, &version, &headers, transport);
            must_send_continue = false;
        }
        let decoder = FusedReader::new(ChunkedDecoder::new(source_data));
        // One byte past the limit tells the application the body is too large.
        let (reader, complete) =
            preread::read_ahead(decoder, preread_limit.saturating_add(1), false, transport)?;
        if !complete {
            abandons_body = true;
        }
        BodyReader::ReadAhead(Box::new(reader))
    } else {
        // if we have neither a Content-Length nor a Transfer-Encoding,
        // assuming that we have no data
        // TODO: could also be multipart/byteranges
        BodyReader::Other(Box::new(io::empty()))
    };

    Ok(Request {
        data_reader: Some(reader),
        response_writer: Some(Box::new(writer) as Box<dyn Write + Send + 'static>),
        remote_addr,
        secure,
        method,
        path,
        http_version: version,
        headers,
        body_length: content_length,
        must_send_continue,
        notify_when_responded: None,
        abandons_body,
        body_in_memory: !connection_upgrade && content_length.is_none_or(|n| n <= preread_limit),
        transport: transport.clone(),
        closes_connection: false,
        keep_alive: false,
        conn: None,
    })
}

impl Request {
    /// postd patch: the body, when it was read ahead (or is empty): `None` when it was
    /// left on the socket (a declared length over the body limit, which the application
    /// refuses from `Content-Length` without reading). Never blocks on the client. A
    /// chunked body over the limit comes back one byte over it, for the same refusal.
    /// A body read ahead is handed over, not copied.
    pub fn read_ahead_body(&mut self) -> Option<Vec<u8>> {
        if !self.body_in_memory {
            return None;
        }
        match self.data_reader.as_mut()? {
            BodyReader::ReadAhead(held) => Some(held.take_unread()),
            BodyReader::Other(reader) => {
                let mut body = Vec::new();
                reader.read_to_end(&mut body).ok()?;
                Some(body)
            }
        }
    }

    /// Returns true if the request was made through HTTPS.
    #[inline]
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// Returns the method requested by the client (eg. `GET`, `POST`, etc.).
    #[inline]
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// Returns the resource requested by the client.
    #[inline]
    pub fn url(&self) -> &str {
        &self.path
    }

    /// Returns a list of all headers sent by the client.
    #[inline]
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// Returns the HTTP version of the request.
    #[inline]
    pub fn http_version(&self) -> &HTTPVersion {
        &self.http_version
    }

    /// Returns the length of the body in bytes.
    ///
    /// Returns `None` if the length is unknown.
    #[inline]
    pub fn body_length(&self) -> Option<usize> {
        self.body_length
    }

    /// Returns the address of the client that sent this request.
    ///
    /// The address is always `Some` for TCP listeners, but always `None` for UNIX listeners
    /// (as the remote address of a UNIX client is almost always unnamed).
    ///
    /// Note that this is gathered from the socket. If you receive the request from a proxy,
    /// this function will return the address of the proxy and not the address of the actual
    /// user.
    #[inline]
    pub fn remote_addr(&self) -> Option<&SocketAddr> {
        self.remote_addr.as_ref()
    }

    /// Sends a response with a `Connection: upgrade` header, then turns the `Request` into a `Stream`.
    ///
    /// The main purpose of this function is to support websockets.
    /// If you detect that the request wants to use some kind of protocol upgrade, you can
    ///  call this function to obtain full control of the socket stream.
    ///
    /// If you call this on a non-websocket request, tiny-http will wait until this `Stream` object
    ///  is destroyed before continuing to read or write on the socket. Therefore you should always
    ///  destroy it as soon as possible.
    pub fn upgrade<R: Read>(
        mut self,
        protocol: &str,
        response: Response<R>,
    ) -> Box<dyn ReadWrite + Send> {
        use crate::util::CustomStream;

        response
            .raw_print_framed(
                self.response_writer.as_mut().unwrap().by_ref(),
                self.http_version.clone(),
                &self.headers,
                false,
                Some(protocol),
                &self.transport.framing(false),
            )
            .ok(); // TODO: unused result

        self.response_writer.as_mut().unwrap().flush().ok(); // TODO: unused result

        let stream = CustomStream::new(self.extract_reader_impl(), self.extract_writer_impl());
        if let Some(sender) = self.notify_when_responded.take() {
            let stream = NotifyOnDrop {
                sender,
                inner: stream,
            };
            Box::new(stream) as Box<dyn ReadWrite + Send>
        } else {
            Box::new(stream) as Box<dyn ReadWrite + Send>
        }
    }

    /// Allows to read the body of the request.
    ///
    /// # Example
    ///
    /// ```no_run
    // postd patch: the example parsed JSON with rustc_serialize, an upstream
    // dev-dependency that is not vendored; it now stops at the text.
    /// # extern crate tiny_http;
    /// # use std::io::Read;
    /// # fn get_content_type(_: &tiny_http::Request) -> &'static str { "" }
    /// # fn main() {
    /// # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
    /// let mut request = server.recv().unwrap();
    ///
    /// if get_content_type(&request) == "application/json" {
    ///     let mut content = String::new();
    ///     request.as_reader().read_to_string(&mut content).unwrap();
    ///     // `content` is the JSON text
    /// }
    /// # }
    /// ```
    ///
    /// If the client sent a `Expect: 100-continue` header with the request, calling this
    ///  function will send back a `100 Continue` response.
    #[inline]
    pub fn as_reader(&mut self) -> &mut dyn Read {
        if self.must_send_continue {
            let msg = Response::new_empty(StatusCode(100));
            msg.raw_print_framed(
                self.response_writer.as_mut().unwrap().by_ref(),
                self.http_version.clone(),
                &self.headers,
                true,
                None,
                &self.transport.framing(false),
            )
            .ok();
            self.response_writer.as_mut().unwrap().flush().ok();
            self.must_send_continue = false;
        }

        self.data_reader.as_mut().unwrap()
    }

    /// Turns the `Request` into a writer.
    ///
    /// The writer has a raw access to the stream to the user.
    /// This function is useful for things like CGI.
    ///
    /// Note that the destruction of the `Writer` object may trigger
    /// some events. For exemple if a client has sent multiple requests and the requests
    /// have been processed in parallel, the destruction of a writer will trigger
    /// the writing of the next response.
    /// Therefore you should always destroy the `Writer` as soon as possible.
    #[inline]
    pub fn into_writer(mut self) -> Box<dyn Write + Send + 'static> {
        let writer = self.extract_writer_impl();
        if let Some(sender) = self.notify_when_responded.take() {
            let writer = NotifyOnDrop {
                sender,
                inner: writer,
            };
            Box::new(writer) as Box<dyn Write + Send + 'static>
        } else {
            writer
        }
    }

    /// Extract the response `Writer` object from the Request, dropping this `Writer` has the same side effects
    /// as the object returned by `into_writer` above.
    ///
    /// This may only be called once on a single request.
    fn extract_writer_impl(&mut self) -> Box<dyn Write + Send + 'static> {
        use std::mem;

        assert!(self.response_writer.is_some());

        let mut writer = None;
        mem::swap(&mut self.response_writer, &mut writer);
        writer.unwrap()
    }

    /// Extract the body `Reader` object from the Request.
    ///
    /// This may only be called once on a single request.
    fn extract_reader_impl(&mut self) -> Box<dyn Read + Send + 'static> {
        use std::mem;

        assert!(self.data_reader.is_some());

        let mut reader = None;
        mem::swap(&mut self.data_reader, &mut reader);
        Box::new(reader.unwrap())
    }

    /// Sends a response to this request.
    #[inline]
    pub fn respond<R>(mut self, response: Response<R>) -> Result<(), IoError>
    where
        R: Read,
    {
        let res = self.respond_impl(response);
        if let Some(sender) = self.notify_when_responded.take() {
            sender.send(()).unwrap();
        }
        res
    }

    fn respond_impl<R>(&mut self, response: Response<R>) -> Result<(), IoError>
    where
        R: Read,
    {
        let mut writer = self.extract_writer_impl();

        // postd patch: an earlier response on this connection closed it (it said so);
        // nothing more reaches this client.
        if self.conn.as_ref().is_some_and(|conn| conn.is_closing()) {
            return Ok(());
        }

        let do_not_send_body = self.method == Method::Head;

        // postd patch: a response after which the connection closes says so, whether the
        // connection decided it (the client asked, a body left unread) or the application
        // did (`Connection: close` on its response). The sending direction is then ended
        // while this response still holds the connection's writer, so no pipelined
        // response can follow it, and the connection's thread drains what the client
        // still sends before closing (a close with unread data would be a reset).
        let mut framing = self
            .transport
            .framing(self.closes_connection || response.closes_connection());
        framing.keep_alive = self.keep_alive && !framing.close;
        let close = framing.close;

        // postd patch: once a write of the response failed (a client that stopped reading
        // makes it wait out the write timeout), every later piece fails at once instead of
        // waiting out the timeout again (the chunked encoder's last chunk, the flush),
        // and the connection is aborted.
        let mut guarded = FailFast {
            inner: writer.by_ref(),
            failed: None,
        };
        let printed = response
            .raw_print_framed(
                &mut guarded,
                self.http_version.clone(),
                &self.headers,
                do_not_send_body,
                None,
                &framing,
            )
            .and_then(|()| guarded.flush());
        let aborted = printed.is_err();
        if aborted {
            if let Some(conn) = &self.conn {
                conn.abort();
            }
        }
        let written = Self::ignore_client_closing_errors(printed);

        if close && !aborted {
            if let Some(conn) = &self.conn {
                conn.close_write();
            }
        }
        written
    }

    /// postd patch: drops a request that will not be answered because the connection is
    /// closing (an earlier response said so), without the automatic 500.
    pub(crate) fn discard(mut self) {
        self.response_writer = None;
        if let Some(sender) = self.notify_when_responded.take() {
            sender.send(()).ok();
        }
    }

    fn ignore_client_closing_errors(result: io::Result<()>) -> io::Result<()> {
        result.or_else(|err| match err.kind() {
            ErrorKind::BrokenPipe => Ok(()),
            ErrorKind::ConnectionAborted => Ok(()),
            ErrorKind::ConnectionRefused => Ok(()),
            ErrorKind::ConnectionReset => Ok(()),
            _ => Err(err),
        })
    }

    pub(crate) fn with_notify_sender(mut self, sender: Sender<()>) -> Self {
        self.notify_when_responded = Some(sender);
        self
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> Result<(), fmt::Error> {
        write!(
            formatter,
            "Request({} {} from {:?})",
            self.method, self.path, self.remote_addr
        )
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        if self.response_writer.is_some() {
            let response = Response::empty(500);
            let _ = self.respond_impl(response); // ignoring any potential error
            if let Some(sender) = self.notify_when_responded.take() {
                sender.send(()).unwrap();
            }
        }
    }
}

/// postd patch: a writer that, once a write or flush failed, fails every later one at
/// once without touching the one below.
struct FailFast<W> {
    inner: W,
    failed: Option<ErrorKind>,
}

impl<W: Write> FailFast<W> {
    fn guard<T>(&mut self, op: impl FnOnce(&mut W) -> io::Result<T>) -> io::Result<T> {
        if let Some(kind) = self.failed {
            return Err(IoError::new(
                kind,
                "an earlier write of this response failed",
            ));
        }
        op(&mut self.inner).inspect_err(|err| {
            if err.kind() != ErrorKind::Interrupted {
                self.failed = Some(err.kind());
            }
        })
    }
}

impl<W: Write> Write for FailFast<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.guard(|inner| inner.write(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.guard(|inner| inner.flush())
    }
}

/// Dummy trait that regroups the `Read` and `Write` traits.
///
/// Automatically implemented on all types that implement both `Read` and `Write`.
pub trait ReadWrite: Read + Write {}
impl<T> ReadWrite for T where T: Read + Write {}

#[cfg(test)]
mod tests {
    use super::Request;

    #[test]
    fn must_be_send() {
        #![allow(dead_code)]
        fn f<T: Send>(_: &T) {}
        fn bar(rq: &Request) {
            f(rq);
        }
    }
}
