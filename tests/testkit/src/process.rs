use std::io::{self, BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A server binary running as a child process, found at the address its start-up line
/// names. Dropping it kills and reaps the process (panics included).
pub struct ServerProcess {
    child: Child,
    addr: SocketAddr,
    banner: String,
}

impl ServerProcess {
    /// Starts `command`, which must make the server listen on loopback (port 0: the OS
    /// picks a free one) and print a first line on stdout with `http://ADDR` in it, and
    /// waits up to `within` for that line. The caller decides where stderr goes; stdin is
    /// closed, and the rest of stdout is drained so the pipe never fills.
    pub fn start(command: &mut Command, within: Duration) -> Result<ServerProcess, String> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|err| format!("cannot start {:?}: {err}", command.get_program()))?;
        let stdout = child.stdout.take().expect("piped stdout");
        // From here on, an early return kills the child through Drop.
        let mut process = ServerProcess {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            banner: String::new(),
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = tx.send(reader.read_line(&mut line).map(|_| line));
            let _ = io::copy(&mut reader, &mut io::sink());
        });
        let line = match rx.recv_timeout(within) {
            Ok(Ok(line)) => line.trim_end().to_owned(),
            Ok(Err(err)) => return Err(format!("cannot read the start-up line: {err}")),
            Err(_) => return Err(format!("no start-up line within {within:?}")),
        };
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|addr| addr.parse::<SocketAddr>().ok())
            .ok_or_else(|| format!("no address in start-up line {line:?}"))?;
        if !addr.ip().is_loopback() {
            return Err(format!("server bound to {addr}, not loopback"));
        }
        process.addr = addr;
        process.banner = line;
        Ok(process)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The start-up line.
    pub fn banner(&self) -> &str {
        &self.banner
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `within` for the process to exit by itself; `None` if it is still
    /// running then.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Ok(None) => return None,
                Err(err) => panic!("cannot wait for the server: {err}"),
            }
        }
    }

    /// SIGKILL, and reap. Does nothing to a process that has already been reaped.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
