//! `org.freedesktop.Notifications.Notify` on one session bus, connected at the first
//! notification and again after a failure.
use std::collections::HashMap;

use zbus::zvariant::Value;

use super::message::{APP_NAME, Notification};

const DESTINATION: &str = "org.freedesktop.Notifications";
const PATH: &str = "/org/freedesktop/Notifications";
const INTERFACE: &str = "org.freedesktop.Notifications";

pub struct Session {
    address: String,
    connected: Option<Connected>,
}

struct Connected {
    connection: zbus::Connection,
    /// The server renders a subset of HTML in bodies, so text must be escaped.
    body_markup: bool,
}

impl Session {
    pub fn new(address: String) -> Self {
        Self {
            address,
            connected: None,
        }
    }

    /// Sends `n`; on failure of a connection made earlier (a bus that restarted, a user
    /// who logged in again), connects once more and retries. The error says why, in a few
    /// words.
    pub async fn deliver(&mut self, n: &Notification) -> Result<(), String> {
        let reused = self.connected.is_some();
        match self.try_deliver(n).await {
            Ok(()) => Ok(()),
            Err(_) if reused => {
                self.connected = None;
                self.try_deliver(n).await
            }
            Err(why) => Err(why),
        }
    }

    async fn try_deliver(&mut self, n: &Notification) -> Result<(), String> {
        if self.connected.is_none() {
            self.connected = Some(connect(&self.address).await?);
        }
        let connected = self.connected.as_ref().expect("connected above");
        let outcome = notify(connected, n).await;
        if outcome.is_err() {
            self.connected = None;
        }
        outcome
    }
}

async fn connect(address: &str) -> Result<Connected, String> {
    let connection = zbus::connection::Builder::address(address)
        .map_err(|e| format!("bad session bus address {address:?}: {e}"))?
        .build()
        .await
        .map_err(|e| format!("cannot connect to the session bus at {address}: {e}"))?;
    let capabilities: Vec<String> = match connection
        .call_method(
            Some(DESTINATION),
            PATH,
            Some(INTERFACE),
            "GetCapabilities",
            &(),
        )
        .await
    {
        Ok(reply) => reply.body().deserialize().unwrap_or_default(),
        Err(e) => return Err(no_server(address, &e)),
    };
    Ok(Connected {
        connection,
        body_markup: capabilities.iter().any(|c| c == "body-markup"),
    })
}

async fn notify(connected: &Connected, n: &Notification) -> Result<(), String> {
    let body = if connected.body_markup {
        escape_markup(&n.body)
    } else {
        n.body.clone()
    };
    let mut hints: HashMap<&str, Value<'_>> = HashMap::new();
    hints.insert("urgency", Value::U8(n.urgency.level()));
    let actions: Vec<&str> = Vec::new();
    let reply = connected
        .connection
        .call_method(
            Some(DESTINATION),
            PATH,
            Some(INTERFACE),
            "Notify",
            &(
                APP_NAME,
                0u32,
                "",
                n.summary.as_str(),
                body.as_str(),
                actions,
                hints,
                // The server's default timeout.
                -1i32,
            ),
        )
        .await
        .map_err(|e| format!("Notify failed: {e}"))?;
    reply
        .body()
        .deserialize::<u32>()
        .map(|_id| ())
        .map_err(|e| format!("Notify answered oddly: {e}"))
}

fn no_server(address: &str, error: &zbus::Error) -> String {
    match error {
        zbus::Error::MethodError(name, _, _)
            if name.as_str() == "org.freedesktop.DBus.Error.ServiceUnknown" =>
        {
            format!("no notification server runs on the session bus at {address}")
        }
        other => format!("the notification server on {address} did not answer: {other}"),
    }
}

/// The body as the freedesktop markup subset reads it: `&`, `<` and `>` as entities.
fn escape_markup(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_is_escaped() {
        assert_eq!(escape_markup("a<b> & \"c\""), "a&lt;b&gt; &amp; \"c\"");
    }
}
