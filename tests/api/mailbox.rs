//! A real SMTP server on a local port for the email tests (issue 12): mailin-embedded speaks
//! SMTP over TCP to the server's lettre transport, and the messages it receives are read back
//! with a MIME parser, the way a mail client would. Nothing in the sending path is mocked.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailin_embedded::response::{self, Response};
use mailin_embedded::{Handler, Server, SslConfig};

/// A message as the server received it.
#[derive(Clone, Debug)]
pub struct Received {
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub raw: String,
}

impl Received {
    /// The link in the text part that starts with `prefix` (up to the next whitespace).
    pub fn link(&self, prefix: &str) -> String {
        let start = self.text.find(prefix).unwrap_or_else(|| panic!("no link {prefix} in:\n{}", self.text));
        self.text[start..].split_whitespace().next().unwrap().to_string()
    }

    /// The `token` query parameter of the link that starts with `prefix`.
    pub fn token(&self, prefix: &str) -> String {
        let link = self.link(prefix);
        let url = url::Url::parse(&link).unwrap();
        url.query_pairs().find(|(k, _)| k == "token").map(|(_, v)| v.into_owned()).expect("token in link")
    }
}

#[derive(Clone)]
struct Collector {
    inbox: Arc<Mutex<Vec<Received>>>,
    to: Vec<String>,
    data: Vec<u8>,
}

impl Handler for Collector {
    fn rcpt(&mut self, to: &str) -> Response {
        // An address the tests use for "the mailbox does not exist": a permanent refusal.
        if to.starts_with("nobody@") {
            return response::NO_MAILBOX;
        }
        response::OK
    }

    fn data_start(&mut self, _domain: &str, _from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.to = to.to_vec();
        self.data.clear();
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let raw = String::from_utf8_lossy(&self.data).into_owned();
        let parsed = mail_parser::MessageParser::default().parse(self.data.as_slice());
        let (subject, text, html) = match &parsed {
            Some(m) => (
                m.subject().unwrap_or_default().to_string(),
                m.body_text(0).map(|t| t.into_owned()).unwrap_or_default(),
                m.body_html(0).map(|t| t.into_owned()).unwrap_or_default(),
            ),
            None => Default::default(),
        };
        let received = Received { to: std::mem::take(&mut self.to), subject, text, html, raw };
        self.inbox.lock().unwrap().push(received);
        response::OK
    }
}

pub struct SmtpServer {
    pub port: u16,
    inbox: Arc<Mutex<Vec<Received>>>,
}

impl SmtpServer {
    /// Starts a server on a free port (its threads live as long as the test process).
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        Self::serve(listener)
    }

    /// Starts a server on `port` (one that was down a moment ago).
    pub fn start_on(port: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        Self::serve(listener)
    }

    fn serve(listener: TcpListener) -> Self {
        let port = listener.local_addr().unwrap().port();
        let inbox = Arc::new(Mutex::new(Vec::new()));
        let handler = Collector { inbox: inbox.clone(), to: Vec::new(), data: Vec::new() };
        std::thread::spawn(move || {
            let mut server = Server::new(handler);
            server.with_name("mail.test").with_ssl(SslConfig::None).unwrap().with_tcp_listener(listener);
            let _ = server.serve();
        });
        Self { port, inbox }
    }

    /// A port where nothing listens (for the outage test): bound, then released.
    pub fn unused_port() -> u16 {
        TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn messages_to(&self, to: &str) -> Vec<Received> {
        self.inbox.lock().unwrap().iter().filter(|m| m.to.iter().any(|t| t == to)).cloned().collect()
    }

    /// Waits until `count` messages to `to` arrived (the outbox sends in the background).
    pub async fn wait_for(&self, to: &str, count: usize) -> Vec<Received> {
        for _ in 0..200 {
            let found = self.messages_to(to);
            if found.len() >= count {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{count} message(s) to {to} did not arrive; got {:?}", self.messages_to(to));
    }

    /// The newest message to `to`, once `count` have arrived.
    pub async fn nth(&self, to: &str, count: usize) -> Received {
        self.wait_for(to, count).await[count - 1].clone()
    }
}

use crate::helpers::{browser, hidden_field, location, query_i64, spawn_app_with, SqlValue, TestApp};
use latchkey::config::{HumanDuration, Registration, Settings};

/// A server with open sign-up that mails through a fresh local SMTP server, quick to retry.
pub async fn spawn_mail_app(configure: impl FnOnce(&mut Settings)) -> (TestApp, SmtpServer) {
    let smtp = SmtpServer::start();
    let url = smtp.url();
    let app = spawn_app_with(|s| {
        s.smtp_url = latchkey::config::Secret::new(url);
        s.email_from = "Latchkey Test <no-reply@latchkey.test>".into();
        s.registration = Registration::Open;
        s.email_retry_base = HumanDuration::secs(1);
        s.email_poll_interval = HumanDuration::secs(1);
        configure(s);
    })
    .await;
    (app, smtp)
}

/// Outbox rows for `recipient` (written, whatever became of them).
pub async fn outbox_rows(app: &TestApp, recipient: &str) -> i64 {
    query_i64(&app.db, "SELECT COUNT(*) FROM outbox WHERE recipient = $1", &[SqlValue::Text(recipient)]).await.unwrap()
}

/// Submits `form` (plus the page's CSRF token) to `action` from the page at `page_path`.
pub async fn submit_form(
    app: &TestApp,
    b: &reqwest::Client,
    page_path: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let page = b.get(app.url(page_path)).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200, "GET {page_path}");
    let csrf = hidden_field(&page.text().await.unwrap(), "csrf");
    let mut form = vec![("csrf", csrf.as_str())];
    form.extend_from_slice(fields);
    b.post(app.url(action)).form(&form).send().await.unwrap()
}

pub const NEW_PASSWORD: &str = "tangerine quarry lantern 42";

/// Signs `email` up through `/register` (no app request); returns the 303's target.
pub async fn sign_up(app: &TestApp, b: &reqwest::Client, email: &str, password: &str) -> String {
    let fields = [("email", email), ("name", "Sam Newcomer"), ("password", password), ("confirm", password)];
    let response = submit_form(app, b, "/register", "/register", &fields).await;
    assert_eq!(response.status().as_u16(), 303, "{}", response.text().await.unwrap());
    location(&response)
}

/// Uses a link page's button (`GET path?token=…`, then the POST it offers); returns the answer.
pub async fn use_link(app: &TestApp, b: &reqwest::Client, path: &str, token: &str) -> reqwest::Response {
    let page = b.get(app.url(&format!("{path}?token={token}"))).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200, "GET {path}");
    let page = page.text().await.unwrap();
    let form = [("csrf", hidden_field(&page, "csrf")), ("token", hidden_field(&page, "token"))];
    b.post(app.url(path)).form(&form).send().await.unwrap()
}

/// Sets a password on a link page (`/reset-password`, `/invitation`); returns the answer.
pub async fn set_password_by_link(
    app: &TestApp,
    b: &reqwest::Client,
    path: &str,
    token: &str,
    password: &str,
) -> reqwest::Response {
    let page = b.get(app.url(&format!("{path}?token={token}"))).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200, "GET {path}");
    let page = page.text().await.unwrap();
    let csrf = hidden_field(&page, "csrf");
    let form = [("csrf", csrf.as_str()), ("token", token), ("password", password), ("confirm", password)];
    b.post(app.url(path)).form(&form).send().await.unwrap()
}

/// A fresh browser's sign-in attempt with the password alone: the POST /login answer.
pub async fn try_sign_in(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    let b = browser();
    submit_form(app, &b, "/login", "/login", &[("email", email), ("password", password)]).await
}
