//! Server-Sent Events as `GET /v1/events` sends them: one event per message, `id:` its
//! sequence number, `event:` its type, `data:` the [`EventRecord`](crate::EventRecord) as JSON;
//! lines starting with `:` keep the connection alive.

/// One message of an event stream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

/// The text of one message.
pub fn encode(id: u64, event: &str, data: &str) -> String {
    let mut out = format!("id: {id}\nevent: {event}\n");
    for line in data.lines() {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    out
}

/// Splits a byte stream into messages, whatever the chunks' boundaries.
#[derive(Debug, Default)]
pub struct Parser {
    buf: Vec<u8>,
}

impl Parser {
    /// Takes in a chunk; answers the messages it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Message> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some(end) = find_blank_line(&self.buf) {
            let block: Vec<u8> = self.buf.drain(..end.0).collect();
            self.buf.drain(..end.1 - end.0);
            if let Some(m) = parse_block(&String::from_utf8_lossy(&block)) {
                out.push(m);
            }
        }
        out
    }
}

/// Where the first message ends: (end of its text, end of the blank line after it).
fn find_blank_line(buf: &[u8]) -> Option<(usize, usize)> {
    let text = buf;
    for i in 0..text.len() {
        if text[i] == b'\n' {
            if text.get(i + 1) == Some(&b'\n') {
                return Some((i, i + 2));
            }
            if text.get(i + 1) == Some(&b'\r') && text.get(i + 2) == Some(&b'\n') {
                return Some((i, i + 3));
            }
        }
    }
    None
}

fn parse_block(block: &str) -> Option<Message> {
    let mut m = Message::default();
    let mut data: Vec<&str> = Vec::new();
    for line in block.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() || line.starts_with(':') {
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "id" => m.id = Some(value.to_string()),
            "event" => m.event = Some(value.to_string()),
            "data" => data.push(value),
            _ => {}
        }
    }
    if m.id.is_none() && m.event.is_none() && data.is_empty() {
        return None;
    }
    m.data = data.join("\n");
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_survive_any_chunking_and_comments_are_skipped() {
        let text = format!(
            ": keep-alive\n\n{}{}",
            encode(7, "JobStarted", r#"{"seq":7}"#),
            encode(8, "JobSucceeded", "a\nb")
        );
        let bytes = text.as_bytes();
        for size in [1, 2, 5, 13, bytes.len()] {
            let mut p = Parser::default();
            let mut got = Vec::new();
            for chunk in bytes.chunks(size) {
                got.extend(p.push(chunk));
            }
            assert_eq!(
                got,
                vec![
                    Message {
                        id: Some("7".into()),
                        event: Some("JobStarted".into()),
                        data: r#"{"seq":7}"#.into()
                    },
                    Message {
                        id: Some("8".into()),
                        event: Some("JobSucceeded".into()),
                        data: "a\nb".into()
                    },
                ],
                "chunks of {size}"
            );
        }
    }
}
