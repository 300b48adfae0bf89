//! Server-Sent Events as the change feed (`GET /events`) writes them, read by hand: blocks
//! of `field: value` lines ended by a blank line; a line starting with `:` is a comment
//! (the feed's keep-alive).

use serde_json::Value;

/// One block of the stream.
#[derive(Debug, Clone, PartialEq)]
pub enum SseItem {
    Event {
        id: i64,
        event: String,
        data: Value,
    },
    /// A comment line (`: keep-alive`), without its colon.
    Comment(String),
}

/// Bytes in, whole blocks out; a block cut short waits for the rest.
#[derive(Default)]
pub struct SseParser {
    pending: Vec<u8>,
}

impl SseParser {
    pub fn new() -> SseParser {
        SseParser::default()
    }

    /// Takes what arrived; returns every block it completed, in order. Panics on a block
    /// that is not the feed's form (an event without id, event or JSON data).
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseItem> {
        self.pending.extend_from_slice(bytes);
        let mut items = Vec::new();
        while let Some(end) = self.pending.windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = self.pending.drain(..end + 2).collect();
            let text = String::from_utf8(block).expect("the stream is UTF-8");
            items.extend(parse_block(text.trim_end_matches('\n')));
        }
        items
    }
}

fn parse_block(block: &str) -> Vec<SseItem> {
    let mut items = Vec::new();
    let (mut id, mut event, mut data) = (None, None, None);
    for line in block.lines() {
        if let Some(comment) = line.strip_prefix(':') {
            items.push(SseItem::Comment(comment.trim().to_string()));
            continue;
        }
        let (field, value) = line
            .split_once(": ")
            .unwrap_or_else(|| panic!("not an SSE field line: {line:?}"));
        match field {
            "id" => id = Some(value.parse::<i64>().expect("a numeric id")),
            "event" => event = Some(value.to_string()),
            "data" => {
                assert!(data.is_none(), "one data line per event: {block:?}");
                data = Some(serde_json::from_str(value).expect("data is JSON"))
            }
            other => panic!("unexpected field {other:?} in {block:?}"),
        }
    }
    match (id, event, data) {
        (Some(id), Some(event), Some(data)) => items.push(SseItem::Event { id, event, data }),
        (None, None, None) => {}
        partial => panic!("an incomplete event {partial:?}: {block:?}"),
    }
    items
}
