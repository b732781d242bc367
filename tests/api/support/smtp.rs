//! A real SMTP server for tests and benchmarks: aiosmtpd on loopback, storing what it accepts in
//! a maildir that [`SmtpSink`] reads back and decodes. Shared with `benches/outbox.rs`.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::Duration,
};

use tempfile::TempDir;

/// A Python interpreter that has aiosmtpd: `CONSENTRY_TEST_PYTHON`, or a virtual environment
/// under the target folder, created on first use.
fn python() -> &'static PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        if let Ok(python) = std::env::var("CONSENTRY_TEST_PYTHON") {
            return PathBuf::from(python);
        }
        let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("smtp-venv");
        let python = venv.join("bin/python");
        let has_aiosmtpd = |python: &PathBuf| {
            Command::new(python)
                .args(["-c", "import aiosmtpd"])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !has_aiosmtpd(&python) {
            let ok = Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .status()
                .is_ok_and(|s| s.success())
                && Command::new(venv.join("bin/pip"))
                    .args([
                        "install",
                        "--quiet",
                        "--disable-pip-version-check",
                        "aiosmtpd==1.4.6",
                    ])
                    .status()
                    .is_ok_and(|s| s.success());
            assert!(
                ok && has_aiosmtpd(&python),
                "cannot install aiosmtpd into {}",
                venv.display()
            );
        }
        python
    })
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An SMTP server on loopback that stores every message it accepts in a maildir.
pub struct SmtpSink {
    pub port: u16,
    dir: TempDir,
    child: Child,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A message as the SMTP server received it, decoded.
#[derive(Debug)]
pub struct ReceivedMail {
    pub to: String,
    pub from: String,
    pub reply_to: Option<String>,
    pub subject: String,
    pub message_id: String,
    pub text: String,
    pub html: String,
}

impl SmtpSink {
    pub async fn start() -> Self {
        Self::start_on(free_port()).await
    }

    pub async fn start_on(port: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        // Owned by the sink at once, so that it is killed and reaped however this function ends.
        let sink = Self {
            port,
            child: Command::new(python())
                .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
                .args(["-c", "aiosmtpd.handlers.Mailbox"])
                .arg(dir.path().join("box"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("aiosmtpd starts"),
            dir,
        };
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return sink;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("aiosmtpd did not start on port {port}");
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Number of messages received so far.
    pub fn count(&self) -> usize {
        std::fs::read_dir(self.dir.path().join("box/new"))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Every message received so far, decoded.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        let Ok(entries) = std::fs::read_dir(self.dir.path().join("box/new")) else {
            return Vec::new();
        };
        entries
            .map(|e| parse(&std::fs::read(e.unwrap().path()).unwrap()))
            .collect()
    }

    /// Waits (up to 10 s) until `n` messages have arrived, and returns them.
    pub async fn wait_for(&self, n: usize) -> Vec<ReceivedMail> {
        for _ in 0..400 {
            if self.count() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        self.messages()
    }

    /// Waits (up to 10 s) for a message whose text contains `part`, and returns it.
    pub async fn wait_for_text(&self, part: &str) -> ReceivedMail {
        for _ in 0..400 {
            if let Some(mail) = self.messages().into_iter().find(|m| m.text.contains(part)) {
                return mail;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("no message with {part:?} arrived")
    }
}

fn parse(raw: &[u8]) -> ReceivedMail {
    use mailparse::MailHeaderMap;
    let mail = mailparse::parse_mail(raw).expect("a MIME message");
    let header = |name: &str| mail.headers.get_first_value(name);
    let mut text = String::new();
    let mut html = String::new();
    for part in mail.parts() {
        match part.ctype.mimetype.as_str() {
            "text/plain" => text = part.get_body().unwrap(),
            "text/html" => html = part.get_body().unwrap(),
            _ => {}
        }
    }
    ReceivedMail {
        to: header("To").unwrap_or_default(),
        from: header("From").unwrap_or_default(),
        reply_to: header("Reply-To"),
        subject: header("Subject").unwrap_or_default(),
        message_id: header("Message-ID").unwrap_or_default(),
        text,
        html,
    }
}
