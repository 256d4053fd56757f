//! Task items (`each`, `each_line`, `each_json`): reading them, checking them, and what one
//! instance sees of its item.
//!
//! Instance *i* of a task with items runs over item *i*: it sees `BATCH_TASK_INSTANCE_ITEM`
//! (the item as text, or as compact JSON for a list or an object) and, for an object,
//! `BATCH_ITEM_<KEY>` per top-level key (the key in upper case). `${BATCH_TASK_INSTANCE_ITEM}`
//! in an argv command, a mapping or a redirect is replaced by the item's text; a shell command
//! reads the variable itself (so an item is never spliced into shell code).
//!
//! Items travel as lines of compact JSON ([`ItemList`]); reading a file or an object is the
//! shell's part, turning its bytes into items is this module's.

use crate::model::{Command, ItemList, TaskSpec};
use crate::spec::value::Value;

/// The variable holding an instance's item.
pub const ITEM_VAR: &str = "BATCH_TASK_INSTANCE_ITEM";
/// The placeholder replaced by an instance's item.
pub const ITEM_PLACEHOLDER: &str = "${BATCH_TASK_INSTANCE_ITEM}";
/// The prefix of the variables an object item's keys become.
pub const ITEM_KEY_PREFIX: &str = "BATCH_ITEM_";
/// Longest item, as text: it must fit in one environment variable.
pub const MAX_ITEM_BYTES: usize = 64 * 1024;
/// Largest file or object items are read from.
pub const MAX_ITEMS_BYTES: u64 = 1 << 30;

/// Why an item is refused: `None` when it is fine.
fn item_problem(v: &Value) -> Option<String> {
    let nul = |s: &str| s.contains('\0');
    match v {
        Value::Null => Some("an item must not be null".into()),
        Value::Float(f) if !f.is_finite() => {
            Some(format!("an item must be a finite number, not {f}"))
        }
        Value::Str(s) if nul(s) => Some("an item must not contain NUL characters".into()),
        Value::Map(entries) => {
            let mut seen = std::collections::BTreeSet::new();
            for (k, field) in entries {
                if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                    return Some(format!(
                        "key {k:?} cannot become an environment variable: use A-Z a-z 0-9 _"
                    ));
                }
                let var = k.to_ascii_uppercase();
                if !seen.insert(var.clone()) {
                    return Some(format!(
                        "keys differing only in case both become {ITEM_KEY_PREFIX}{var}"
                    ));
                }
                if let Some(p) = nested_problem(field) {
                    return Some(format!("key `{k}`: {p}"));
                }
            }
            None
        }
        Value::Seq(items) => items.iter().find_map(nested_problem),
        Value::Bool(_) | Value::Int(_) | Value::Float(_) | Value::Str(_) => None,
    }
}

/// Problems of a value inside an item (null is fine there).
fn nested_problem(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::Map(entries) => entries.iter().find_map(|(_, v)| nested_problem(v)),
        Value::Seq(items) => items.iter().find_map(nested_problem),
        Value::Float(f) if !f.is_finite() => Some(format!("numbers must be finite, not {f}")),
        Value::Str(s) if s.contains('\0') => Some("text must not contain NUL characters".into()),
        Value::Bool(_) | Value::Int(_) | Value::Float(_) | Value::Str(_) => None,
    }
}

/// Compact JSON of a value, keeping the order of mapping keys.
fn write_json(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Float(f) => {
            out.push_str(&serde_json::to_string(f).unwrap_or_else(|_| "null".into()))
        }
        Value::Str(s) => out.push_str(&json_string(s)),
        Value::Seq(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(item, out);
            }
            out.push(']');
        }
        Value::Map(entries) => {
            out.push('{');
            for (i, (k, item)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&json_string(k));
                out.push(':');
                write_json(item, out);
            }
            out.push('}');
        }
    }
}

fn json_string(s: &str) -> String {
    // Serialising a string cannot fail.
    serde_json::to_string(s).unwrap_or_default()
}

/// The text of a value: strings as they are, scalars as written, lists and objects as JSON.
fn text_of(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Str(s) => s.clone(),
        Value::Float(_) | Value::Seq(_) | Value::Map(_) => {
            let mut out = String::new();
            write_json(v, &mut out);
            out
        }
    }
}

/// Builds an item list, checking each item; errors name the item (`each[3]`-style labels come
/// from `label`).
pub(crate) struct ItemsBuilder {
    pub list: ItemList,
    /// (which item, what is wrong); an empty label for the list as a whole.
    pub errors: Vec<(String, String)>,
}

/// Why reading items stops early: too many errors, or too many items.
fn enough(b: &ItemsBuilder) -> bool {
    b.errors.len() > crate::spec::MAX_ERRORS || b.list.len() > crate::model::MAX_INSTANCES
}

impl ItemsBuilder {
    pub fn new() -> Self {
        ItemsBuilder {
            list: ItemList::default(),
            errors: Vec::new(),
        }
    }

    /// Adds one item; `label` says which, for an error (`item 3`, `line 17`).
    pub fn push(&mut self, v: &Value, label: impl FnOnce() -> String) {
        let problem = item_problem(v).or_else(|| {
            let n = text_of(v).len();
            (n > MAX_ITEM_BYTES)
                .then(|| format!("an item is at most {MAX_ITEM_BYTES} bytes, this one has {n}"))
        });
        if let Some(p) = problem {
            self.errors.push((label(), p));
            return;
        }
        if self.list.len() == crate::model::MAX_INSTANCES {
            self.errors.push((
                String::new(),
                format!(
                    "more than {} items; a task has at most that many instances",
                    crate::model::MAX_INSTANCES
                ),
            ));
        }
        let mut json = String::new();
        write_json(v, &mut json);
        self.list.push_json(&json);
    }

    pub fn finish(self) -> Result<ItemList, Vec<(String, String)>> {
        if !self.errors.is_empty() {
            return Err(self.errors);
        }
        if self.list.is_empty() {
            return Err(vec![(
                String::new(),
                "there are no items: a task needs at least one".into(),
            )]);
        }
        Ok(self.list)
    }
}

/// `label: message`, or the message alone.
fn joined(errors: Vec<(String, String)>) -> Vec<String> {
    errors
        .into_iter()
        .map(|(l, m)| if l.is_empty() { m } else { format!("{l}: {m}") })
        .collect()
}

/// Items from text, one per line (`each_line`). Blank lines are skipped; a trailing `\r` is
/// dropped. Errors name the line.
pub fn from_lines(bytes: &[u8]) -> Result<ItemList, Vec<String>> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        vec![format!("line {line}: not valid UTF-8")]
    })?;
    let mut b = ItemsBuilder::new();
    for (n, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            continue;
        }
        b.push(&Value::Str(line.to_string()), || format!("line {}", n + 1));
        if enough(&b) {
            break;
        }
    }
    b.finish().map_err(joined)
}

/// Items from a JSON array (`each_json`). Errors name the item by its index.
pub fn from_json(bytes: &[u8]) -> Result<ItemList, Vec<String>> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| vec![format!("invalid JSON: {e}")])?;
    let Value::Seq(items) = v else {
        return Err(vec![format!(
            "expected a JSON array of items, got {}",
            v.describe()
        )]);
    };
    from_values(&items, |i| format!("item {i}")).map_err(joined)
}

/// Items from values already read (`each: [...]`).
pub(crate) fn from_values(
    items: &[Value],
    label: impl Fn(usize) -> String,
) -> Result<ItemList, Vec<(String, String)>> {
    let mut b = ItemsBuilder::new();
    for (i, v) in items.iter().enumerate() {
        b.push(v, || label(i));
        if enough(&b) {
            break;
        }
    }
    b.finish()
}

/// One stored item (a line of an [`ItemList`]), read back.
#[derive(Debug, Clone, PartialEq)]
pub struct Item(Value);

impl Item {
    /// Reads one item's JSON line.
    pub fn parse(json: &str) -> Result<Item, String> {
        serde_json::from_str::<Value>(json)
            .map(Item)
            .map_err(|e| format!("stored item is not JSON: {e}"))
    }

    /// `BATCH_TASK_INSTANCE_ITEM`: the item as text.
    pub fn text(&self) -> String {
        text_of(&self.0)
    }

    /// The variables an instance over this item gets: `BATCH_TASK_INSTANCE_ITEM`, and
    /// `BATCH_ITEM_<KEY>` per key of an object.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut out = vec![(ITEM_VAR.to_string(), self.text())];
        if let Value::Map(entries) = &self.0 {
            for (k, v) in entries {
                out.push((
                    format!("{ITEM_KEY_PREFIX}{}", k.to_ascii_uppercase()),
                    text_of(v),
                ));
            }
        }
        out
    }
}

/// Whether a text uses the item placeholder.
pub fn uses_item(text: &str) -> bool {
    text.contains(ITEM_PLACEHOLDER)
}

/// `text` with the item placeholder replaced by `item`.
pub fn substitute(text: &str, item: &str) -> String {
    text.replace(ITEM_PLACEHOLDER, item)
}

/// The task as instance over `item` runs it: the placeholder filled in in an argv command,
/// the mappings and the redirects, and the item's variables added to its environment.
pub fn for_item(task: &TaskSpec, item: &Item) -> TaskSpec {
    let text = item.text();
    let mut t = task.clone();
    if let Command::Argv(argv) = &mut t.command {
        for a in argv.iter_mut().filter(|a| uses_item(a)) {
            *a = substitute(a, &text);
        }
    }
    for m in &mut t.inputs {
        m.source = substitute(&m.source, &text);
        m.target = substitute(&m.target, &text);
    }
    for m in &mut t.outputs {
        m.source = substitute(&m.source, &text);
        m.target = substitute(&m.target, &text);
    }
    for r in [&mut t.stdout, &mut t.stderr].into_iter().flatten() {
        *r = substitute(r, &text);
    }
    t.env.extend(item.env());
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(list: &ItemList) -> Vec<Item> {
        list.iter().map(|l| Item::parse(l).unwrap()).collect()
    }

    #[test]
    fn lines_skip_blanks_and_keep_text() {
        let list = from_lines(b"a b\r\n\n  \n\"q\"\nlast").unwrap();
        assert_eq!(list.len(), 3);
        let texts: Vec<String> = items(&list).iter().map(Item::text).collect();
        assert_eq!(texts, ["a b", "\"q\"", "last"]);
        assert!(from_lines(b"\n\n").unwrap_err()[0].contains("no items"));
        assert!(from_lines(b"ok\nbad\0x\n").unwrap_err()[0].starts_with("line 2:"));
        assert!(from_lines(b"ok\n\xff\n").unwrap_err()[0].starts_with("line 2:"));
    }

    #[test]
    fn objects_become_variables_in_key_order() {
        let list =
            from_json(br#"[{"sample": "s1", "Reads": 3, "tags": ["x"], "n": null}, 7, 2.5, true]"#)
                .unwrap();
        let it = items(&list);
        assert_eq!(
            it[0].text(),
            r#"{"sample":"s1","Reads":3,"tags":["x"],"n":null}"#
        );
        assert_eq!(
            it[0].env(),
            [
                (ITEM_VAR.to_string(), it[0].text()),
                ("BATCH_ITEM_SAMPLE".into(), "s1".into()),
                ("BATCH_ITEM_READS".into(), "3".into()),
                ("BATCH_ITEM_TAGS".into(), r#"["x"]"#.into()),
                ("BATCH_ITEM_N".into(), String::new()),
            ]
        );
        assert_eq!(
            [it[1].text(), it[2].text(), it[3].text()],
            ["7", "2.5", "true"]
        );
    }

    #[test]
    fn bad_items_are_named() {
        let e = from_json(br#"["a", null, {"a-b": 1}, {"k": 1, "K": 2}]"#).unwrap_err();
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e[0].starts_with("item 1:") && e[0].contains("null"));
        assert!(e[1].starts_with("item 2:") && e[1].contains("a-b"));
        assert!(e[2].starts_with("item 3:") && e[2].contains("BATCH_ITEM_K"));
        assert!(from_json(b"{}").unwrap_err()[0].contains("JSON array"));
        assert!(from_json(b"[").unwrap_err()[0].contains("invalid JSON"));
        let big = format!("[{:?}]", "x".repeat(MAX_ITEM_BYTES + 1));
        assert!(from_json(big.as_bytes()).unwrap_err()[0].contains("at most"));
    }

    #[test]
    fn chunks_split_on_item_boundaries() {
        let text: String = (0..2500).map(|i| format!("{i}\n")).collect();
        let list = from_lines(text.as_bytes()).unwrap();
        let chunks = list.chunks();
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[0].lines().count(), 1024);
        assert_eq!(chunks[2].lines().count(), 2500 - 2048);
        assert_eq!(chunks[1].lines().next(), Some("\"1024\""));
        assert_ne!(list.digest(), from_lines(b"0\n").unwrap().digest());
    }

    #[test]
    fn the_placeholder_is_filled_in_but_never_in_shell_code() {
        let spec = crate::spec::parse_job(
            br#"
name: j
tasks:
  a:
    each: [x]
    command: ["cat", "in/${BATCH_TASK_INSTANCE_ITEM}"]
    inputs: [{source: "s3://bkt/in/${BATCH_TASK_INSTANCE_ITEM}", target: "in/${BATCH_TASK_INSTANCE_ITEM}"}]
    stdout: "s3://bkt/logs/${BATCH_TASK_INSTANCE_ITEM}.log"
  b:
    each: [x]
    command: echo "${BATCH_TASK_INSTANCE_ITEM}"
"#,
            &Default::default(),
        )
        .unwrap()
        .spec;
        let item = Item::parse("\"f1\"").unwrap();
        let a = for_item(&spec.tasks[0], &item);
        assert_eq!(a.command, Command::Argv(vec!["cat".into(), "in/f1".into()]));
        assert_eq!(a.inputs[0].source, "s3://bkt/in/f1");
        assert_eq!(a.inputs[0].target, "in/f1");
        assert_eq!(a.stdout.as_deref(), Some("s3://bkt/logs/f1.log"));
        assert_eq!(a.env.get(ITEM_VAR).map(String::as_str), Some("f1"));
        let b = for_item(&spec.tasks[1], &item);
        assert_eq!(b.command, spec.tasks[1].command);
    }
}
