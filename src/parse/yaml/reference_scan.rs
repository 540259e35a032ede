//! The indentation scanner as it was before it stopped allocating a path per line: kept
//! unchanged so that tests can hold the new one to exactly the same line maps.

use super::{LineMap, PathSeg, child, interesting};

enum YKind {
    Map {
        last_key: Option<String>,
    },
    Seq {
        next: usize,
        open: Option<Vec<PathSeg>>,
    },
}

struct YFrame {
    indent: usize,
    kind: YKind,
    path: Vec<PathSeg>,
}

/// Follow block-style YAML by indentation and record where list items and `kind` keys are.
pub(super) fn scan_yaml(lines: &[(usize, &str)]) -> LineMap {
    let mut st = YScan {
        map: LineMap::default(),
        stack: Vec::new(),
        skip_deeper: None,
        last_sig: 0,
    };
    for &(no, line) in lines {
        let content = line.trim_start_matches(' ');
        let indent = line.len() - content.len();
        if content.trim().is_empty() {
            continue;
        }
        if let Some(d) = st.skip_deeper {
            if indent > d {
                st.last_sig = no;
                continue;
            }
            st.skip_deeper = None;
        }
        if content.starts_with('#') {
            continue;
        }
        st.handle(indent, content, no);
        st.last_sig = no;
    }
    while let Some(f) = st.stack.pop() {
        st.close(f);
    }
    st.map
}

struct YScan {
    map: LineMap,
    stack: Vec<YFrame>,
    skip_deeper: Option<usize>,
    last_sig: usize,
}

impl YScan {
    fn close(&mut self, f: YFrame) {
        if let YKind::Seq { open: Some(p), .. } = f.kind {
            self.map.record_end(&p, self.last_sig);
        }
    }

    fn pop_while(&mut self, cond: impl Fn(&YFrame) -> bool) {
        while let Some(top) = self.stack.last() {
            if !cond(top) {
                break;
            }
            if let Some(f) = self.stack.pop() {
                self.close(f);
            }
        }
    }

    /// Path of the node a new container at a deeper indent belongs to.
    fn parent_path(&self) -> Vec<PathSeg> {
        match self.stack.last() {
            None => Vec::new(),
            Some(f) => match &f.kind {
                YKind::Map { last_key } => {
                    child(&f.path, PathSeg::Key(last_key.clone().unwrap_or_default()))
                }
                YKind::Seq { next, open } => open
                    .clone()
                    .unwrap_or_else(|| child(&f.path, PathSeg::Index(next.saturating_sub(1)))),
            },
        }
    }

    fn handle(&mut self, col: usize, content: &str, no: usize) {
        if content == "-" || content.starts_with("- ") || content.starts_with("-\t") {
            self.pop_while(|f| f.indent > col);
            let continues = matches!(
                self.stack.last(),
                Some(YFrame { indent, kind: YKind::Seq { .. }, .. }) if *indent == col
            );
            if !continues {
                let path = self.parent_path();
                self.stack.push(YFrame {
                    indent: col,
                    kind: YKind::Seq {
                        next: 0,
                        open: None,
                    },
                    path,
                });
            }
            let last_sig = self.last_sig;
            if let Some(YFrame {
                kind: YKind::Seq { next, open },
                path,
                ..
            }) = self.stack.last_mut()
            {
                if let Some(p) = open.take() {
                    self.map.record_end(&p, last_sig);
                }
                let seg = PathSeg::Index(*next);
                *next += 1;
                let p = child(path, seg.clone());
                if interesting(path, &seg) {
                    self.map.record_start(p.clone(), no);
                }
                *open = Some(p);
            }
            let rest = content[1..].trim_start_matches([' ', '\t']);
            if rest.is_empty() || rest.starts_with('#') {
                return;
            }
            let col2 = col + (content.len() - rest.len());
            self.handle(col2, rest, no);
        } else if let Some((key, value)) = split_key(content) {
            self.pop_while(|f| {
                f.indent > col || (f.indent == col && matches!(f.kind, YKind::Seq { .. }))
            });
            let same_map = matches!(
                self.stack.last(),
                Some(YFrame { indent, kind: YKind::Map { .. }, .. }) if *indent == col
            );
            if !same_map {
                let path = self.parent_path();
                self.stack.push(YFrame {
                    indent: col,
                    kind: YKind::Map { last_key: None },
                    path,
                });
            }
            if let Some(YFrame {
                kind: YKind::Map { last_key },
                path,
                ..
            }) = self.stack.last_mut()
            {
                let seg = PathSeg::Key(key.clone());
                if interesting(path, &seg) {
                    self.map.record_start(child(path, seg), no);
                }
                if matches!(key.as_str(), "kind" | "apiVersion") {
                    self.map.record_scalar(path, &key, scalar_text(value));
                }
                *last_key = Some(key);
            }
            let value = strip_properties(value);
            if !value.is_empty() && !value.starts_with('#') {
                // An inline value (scalar, flow collection or block scalar header): deeper
                // lines that follow are its continuation, not structure.
                self.skip_deeper = Some(col);
            }
        }
    }
}

/// An inline scalar's text: unquoted (without unescaping), comment dropped.
fn scalar_text(v: &str) -> String {
    let v = v.trim();
    for q in ['"', '\''] {
        if let Some(rest) = v.strip_prefix(q) {
            return rest.split(q).next().unwrap_or("").to_string();
        }
    }
    v.split(" #").next().unwrap_or("").trim().to_string()
}

/// Drop leading `&anchor` and `!tag` tokens from a value.
fn strip_properties(mut v: &str) -> &str {
    loop {
        v = v.trim();
        if v.starts_with('&') || v.starts_with('!') {
            v = v.find([' ', '\t']).map_or("", |i| &v[i..]);
        } else {
            return v;
        }
    }
}

/// `key: value` → (key, value). Quoted keys are unquoted (without unescaping).
fn split_key(content: &str) -> Option<(String, &str)> {
    let b = content.as_bytes();
    let first = *b.first()?;
    if first == b'"' || first == b'\'' {
        let mut i = 1;
        let close = loop {
            match b.get(i) {
                None => return None,
                Some(&c) if first == b'"' && c == b'\\' => i += 2,
                Some(&c) if c == first => {
                    if first == b'\'' && b.get(i + 1) == Some(&b'\'') {
                        i += 2;
                    } else {
                        break i;
                    }
                }
                Some(_) => i += 1,
            }
        };
        let key = content.get(1..close)?.to_string();
        let after = content.get(close + 1..)?.trim_start();
        let rest = after.strip_prefix(':')?;
        if rest.is_empty() || rest.starts_with([' ', '\t']) {
            return Some((key, rest.trim()));
        }
        return None;
    }
    if matches!(
        first,
        b'[' | b'{' | b'?' | b'|' | b'>' | b'*' | b'&' | b'!' | b'%' | b'@' | b'`' | b'#'
    ) {
        return None;
    }
    for i in 0..b.len() {
        match b[i] {
            b':' if i + 1 == b.len() || matches!(b[i + 1], b' ' | b'\t') => {
                let key = content[..i].trim_end().to_string();
                return Some((key, content[i + 1..].trim()));
            }
            b'#' if i > 0 && matches!(b[i - 1], b' ' | b'\t') => return None,
            _ => {}
        }
    }
    None
}
