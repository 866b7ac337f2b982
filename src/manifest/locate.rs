//! Finding the line of a field in a manifest's text, for semantic validation errors.
//!
//! serde_yaml gives locations for syntax and type errors only; rules checked after parsing
//! (a name pattern, a missing image) name a field path, and [`line_of`] finds that field by
//! walking the indentation of the text. Best effort: block style and simple flow style
//! (`http: { url: ... }`) are handled; when a step cannot be found, the deepest field that
//! was found is returned.

use super::problem::{FieldPath, Segment};

/// The 1-based `(line, column)` of the deepest field of `path` found in `text`.
///
/// Returns `None` when not even the first key is found.
pub fn line_of(text: &str, path: &FieldPath) -> Option<(usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut node = Node::ROOT;
    let mut found = None;
    for segment in &path.0 {
        let next = match segment {
            Segment::Key(key) => find_key(&lines, &node, key),
            Segment::Index(index) => find_index(&lines, &node, *index),
        };
        match next {
            Some(next) => {
                found = Some((next.line + 1, usize::try_from(next.col).unwrap_or(0) + 1));
                node = next;
            }
            None => break,
        }
    }
    found
}

/// The 1-based `(line, column)` of the value of the field `path` when it is written on the
/// key's own line (`suspend: sometimes`, `- 5s`), else where [`line_of`] finds the field.
///
/// Errors about a value (a wrong type, an unknown variant) point at the value, as serde_yaml's
/// do; errors about a key (unknown, missing) point at the key.
pub fn value_of(text: &str, path: &FieldPath) -> Option<(usize, usize)> {
    let (line, column) = line_of(text, path)?;
    let fallback = Some((line, column));
    let found_whole_path = line_of(
        text,
        &FieldPath(path.0[..path.0.len().saturating_sub(1)].to_vec()),
    ) != fallback;
    let Some(last) = path.0.last().filter(|_| found_whole_path) else {
        return fallback;
    };
    let rest = text.lines().nth(line - 1)?.get(column - 1..)?;
    let after = match last {
        Segment::Key(key) => strip_key(rest, key)?,
        Segment::Index(_) => rest.strip_prefix('-')?,
    };
    let value = after.trim_start_matches([' ', '\t']);
    if value.is_empty() || value.starts_with('#') {
        return fallback;
    }
    Some((line, column + (rest.len() - value.len())))
}

/// Where a node's key (or sequence dash) sits.
#[derive(Debug, Clone, Copy)]
struct Node {
    /// 0-based line; `usize::MAX` for the document root.
    line: usize,
    /// 0-based column of the key or dash; -1 for the root.
    col: isize,
    /// For a sequence item `- key: v`: the column where the item's first key starts.
    inline_col: Option<usize>,
    /// The node's value is a flow collection on its own line (`{ ... }` or `[ ... ]`).
    flow: bool,
}

impl Node {
    const ROOT: Node = Node {
        line: usize::MAX,
        col: -1,
        inline_col: None,
        flow: false,
    };

    fn first_child_line(&self) -> usize {
        self.line.wrapping_add(1)
    }
}

fn find_key(lines: &[&str], node: &Node, key: &str) -> Option<Node> {
    if node.flow {
        let line = lines.get(node.line)?;
        let start = usize::try_from(node.col).unwrap_or(0);
        return find_in_flow(line, start, key).map(|col| Node {
            line: node.line,
            col: col as isize,
            inline_col: None,
            flow: true,
        });
    }
    let mut child_col = node.inline_col;
    if let Some(col) = node.inline_col {
        let line = lines.get(node.line)?;
        if let Some(node) = key_here(line, node.line, col, key) {
            return Some(node);
        }
    }
    for (j, line) in lines.iter().enumerate().skip(node.first_child_line()) {
        let Some(indent) = content_indent(line) else {
            continue;
        };
        if indent as isize <= node.col {
            break;
        }
        let child = *child_col.get_or_insert(indent);
        if indent == child
            && let Some(found) = key_here(line, j, indent, key)
        {
            return Some(found);
        }
    }
    None
}

fn find_index(lines: &[&str], node: &Node, index: usize) -> Option<Node> {
    if node.flow {
        return Some(*node);
    }
    let mut dash_col = None;
    let mut count = 0;
    for (j, line) in lines.iter().enumerate().skip(node.first_child_line()) {
        let Some(indent) = content_indent(line) else {
            continue;
        };
        let content = &line[indent..];
        let is_dash = content == "-" || content.starts_with("- ");
        if (indent as isize) < node.col || (indent as isize == node.col && !is_dash) {
            break;
        }
        if !is_dash || *dash_col.get_or_insert(indent) != indent {
            continue;
        }
        if count == index {
            let after = &content[1..];
            let item_col = indent + 1 + (after.len() - after.trim_start().len());
            return Some(Node {
                line: j,
                col: indent as isize,
                inline_col: Some(item_col),
                flow: false,
            });
        }
        count += 1;
    }
    None
}

/// The node for `key` when it starts at `col` of `line`.
fn key_here(line: &str, line_index: usize, col: usize, key: &str) -> Option<Node> {
    let rest = line.get(col..)?;
    let after = strip_key(rest, key)?;
    let value = after.trim_start();
    Some(Node {
        line: line_index,
        col: col as isize,
        inline_col: None,
        flow: value.starts_with('{') || value.starts_with('['),
    })
}

/// The text after `key:` when `text` starts with that key (plain or quoted).
fn strip_key<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let rest = [format!("\"{key}\""), format!("'{key}'"), key.to_string()]
        .iter()
        .find_map(|form| text.strip_prefix(form.as_str()))?;
    let rest = rest.trim_start_matches(' ').strip_prefix(':')?;
    (rest.is_empty() || rest.starts_with([' ', '\t'])).then_some(rest)
}

/// The column of `key:` inside a flow collection on `line`, searching from `start`.
fn find_in_flow(line: &str, start: usize, key: &str) -> Option<usize> {
    let mut from = start;
    while let Some(at) = line.get(from..)?.find(key) {
        let col = from + at;
        let before = line[..col].chars().next_back();
        let boundary = matches!(before, Some('{' | ',' | ' ' | '"' | '\''));
        let quoted_start = if matches!(before, Some('"' | '\'')) {
            col - 1
        } else {
            col
        };
        if boundary && strip_key(&line[quoted_start..], key).is_some() {
            return Some(quoted_start);
        }
        from = col + key.len();
    }
    None
}

/// The indentation of a line with content, `None` for blank lines, comments and `---`.
fn content_indent(line: &str) -> Option<usize> {
    let trimmed = line.trim_start_matches(' ');
    if trimmed.is_empty()
        || trimmed.starts_with('#')
        || trimmed.starts_with("---")
        || trimmed.trim().is_empty()
    {
        return None;
    }
    Some(line.len() - trimmed.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# comment
apiVersion: c2quay.dev/v1
metadata:
  name: Shop
spec:
  services:
    api:
      version: \"2\"
    web:
      # the storefront
      image: web:{version}
      version: \"\"
  smoke:
  - name: first
    tcp: { address: \"127.0.0.1:1\" }
  - name: second
    http:
      url: ftp://x
    timeout: 0s
  hosts: [a, b]
";

    #[test]
    fn finds_block_flow_and_sequence_fields() {
        let cases: &[(&str, Option<(usize, usize)>)] = &[
            ("apiVersion", Some((2, 1))),
            ("metadata.name", Some((4, 3))),
            ("spec.services.web.version", Some((12, 7))),
            ("spec.services.api.version", Some((8, 7))),
            ("spec.smoke[0].name", Some((14, 5))),
            ("spec.smoke[0].tcp.address", Some((15, 12))),
            ("spec.smoke[1]", Some((16, 3))),
            ("spec.smoke[1].http.url", Some((18, 7))),
            ("spec.smoke[1].timeout", Some((19, 5))),
            ("spec.hosts[1]", Some((20, 3))),
            // Not found below a found field: the deepest found field.
            ("spec.services.web.pacticipant", Some((9, 5))),
            ("spec.smoke[5].name", Some((13, 3))),
            ("nothing.here", None),
        ];
        for (path, expected) in cases {
            assert_eq!(line_of(TEXT, &FieldPath::parse(path)), *expected, "{path}");
        }
    }

    #[test]
    fn sequences_indented_under_their_key() {
        let text =
            "spec:\n  smoke:\n    - name: a\n      tcp:\n        address: x\n    - name: b\n";
        assert_eq!(
            line_of(text, &FieldPath::parse("spec.smoke[1].name")),
            Some((6, 7))
        );
        assert_eq!(
            line_of(text, &FieldPath::parse("spec.smoke[0].tcp.address")),
            Some((5, 9))
        );
    }
}
