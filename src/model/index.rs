//! A label index: which items carry which label values, so that matching a selector evaluates
//! only the items that can possibly match. Calico's own `LabelRestrictions` of a selector say
//! which labels it requires (present, or with one of some values); the index narrows to the
//! items that satisfy the most selective of them, then the selector is evaluated exactly on
//! those. Nothing is approximated: the index only prunes items that cannot match.

use std::collections::HashMap;

use crate::calico::labels::InheritedLabels;
use crate::calico::selector::Selector;

#[derive(Debug, Default)]
pub struct LabelIndex {
    len: usize,
    /// key → value → items (ascending).
    by_value: HashMap<String, HashMap<String, Vec<usize>>>,
    /// key → items carrying the key (ascending).
    by_key: HashMap<String, Vec<usize>>,
}

impl LabelIndex {
    /// Index items in order; an item's number is its position in the iterator.
    pub fn new<'a>(items: impl Iterator<Item = &'a InheritedLabels>) -> LabelIndex {
        let mut idx = LabelIndex::default();
        for (i, labels) in items.enumerate() {
            idx.len = i + 1;
            for (k, v) in labels.flatten() {
                idx.by_key.entry(k.clone()).or_default().push(i);
                idx.by_value
                    .entry(k)
                    .or_default()
                    .entry(v)
                    .or_default()
                    .push(i);
            }
        }
        idx
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The items that could match `sel` according to its label restrictions, or `None` when
    /// the selector restricts nothing (every item must be evaluated).
    fn candidates(&self, sel: &Selector) -> Option<Vec<usize>> {
        let mut best: Option<Vec<usize>> = None;
        for (key, r) in sel.label_restrictions() {
            let found: Vec<usize> = if let Some(values) = &r.must_have_one_of_values {
                let mut v: Vec<usize> = values
                    .iter()
                    .filter_map(|val| self.by_value.get(&key).and_then(|m| m.get(val)))
                    .flatten()
                    .copied()
                    .collect();
                v.sort_unstable();
                v.dedup();
                v
            } else if r.must_be_present {
                self.by_key.get(&key).cloned().unwrap_or_default()
            } else {
                continue;
            };
            if best.as_ref().is_none_or(|b| found.len() < b.len()) {
                best = Some(found);
            }
        }
        best
    }

    /// Whether `sel` matches any item (evaluation stops at the first that matches).
    pub fn any_matching<'a>(
        &self,
        sel: &Selector,
        labels_of: impl Fn(usize) -> &'a InheritedLabels,
    ) -> bool {
        match self.candidates(sel) {
            Some(c) => c.into_iter().any(|i| sel.evaluate(labels_of(i))),
            None => (0..self.len).any(|i| sel.evaluate(labels_of(i))),
        }
    }

    /// Every item `sel` matches, ascending. `labels_of` gives an item's labels by number.
    pub fn matching<'a>(
        &self,
        sel: &Selector,
        labels_of: impl Fn(usize) -> &'a InheritedLabels,
    ) -> Vec<usize> {
        match self.candidates(sel) {
            Some(c) => c
                .into_iter()
                .filter(|&i| sel.evaluate(labels_of(i)))
                .collect(),
            None => (0..self.len)
                .filter(|&i| sel.evaluate(labels_of(i)))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn item(pairs: &[(&str, &str)]) -> InheritedLabels {
        InheritedLabels::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        )
    }

    #[test]
    fn the_index_returns_exactly_what_a_full_scan_returns() {
        let items = [
            item(&[("app", "web"), ("ns", "a")]),
            item(&[("app", "db"), ("ns", "a")]),
            item(&[("app", "web"), ("ns", "b")]),
            item(&[("tier", "x")]),
        ];
        let idx = LabelIndex::new(items.iter());
        for s in [
            "app == 'web'",
            "app == 'web' && ns == 'a'",
            "has(tier)",
            "!has(app)",
            "app in {'db', 'web'} && ns != 'b'",
            "app == 'web' || tier == 'x'",
            "",
            "app == 'none'",
        ] {
            let sel = Selector::parse(s).unwrap();
            let scan: Vec<usize> = (0..items.len())
                .filter(|&i| sel.evaluate(&items[i]))
                .collect();
            assert_eq!(idx.matching(&sel, |i| &items[i]), scan, "{s}");
            assert_eq!(
                idx.any_matching(&sel, |i| &items[i]),
                !scan.is_empty(),
                "{s}"
            );
        }
    }
}
