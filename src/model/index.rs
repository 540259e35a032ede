//! A label index: which items carry which label values, so that matching a selector evaluates
//! only the items that can possibly match. Calico's own `LabelRestrictions` of a selector say
//! which labels it requires (present, or with one of some values); the index narrows to the
//! items that satisfy the most selective of them, then the selector is evaluated exactly on
//! those. Nothing is approximated: the index only prunes items that cannot match.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::calico::labels::InheritedLabels;
use crate::calico::selector::{LabelRestriction, Selector};

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

    /// The items that could match `sel` according to its label restrictions, ascending, or
    /// `None` when the selector restricts nothing (every item must be evaluated). Only the
    /// most selective restriction's list is built (an item has one value per key, so the
    /// lists of a restriction's values are disjoint and their lengths add up).
    fn candidates(&self, sel: &Selector) -> Option<Cow<'_, [usize]>> {
        let lists = |key: &str, r: &LabelRestriction| -> Option<Vec<&[usize]>> {
            if let Some(values) = &r.must_have_one_of_values {
                let by_value = self.by_value.get(key);
                Some(
                    values
                        .iter()
                        .filter_map(|val| by_value.and_then(|m| m.get(val)))
                        .map(Vec::as_slice)
                        .collect(),
                )
            } else if r.must_be_present {
                Some(vec![self.by_key.get(key).map_or(&[][..], Vec::as_slice)])
            } else {
                None
            }
        };
        let mut best: Option<(usize, Vec<&[usize]>)> = None;
        for (key, r) in sel.label_restrictions() {
            let Some(found) = lists(&key, &r) else {
                continue;
            };
            let size = found.iter().map(|l| l.len()).sum();
            if best.as_ref().is_none_or(|(b, _)| size < *b) {
                best = Some((size, found));
            }
        }
        let (_, found) = best?;
        Some(match found.as_slice() {
            [] => Cow::Borrowed(&[][..]),
            [one] => Cow::Borrowed(*one),
            many => {
                let mut v: Vec<usize> = many.concat();
                v.sort_unstable();
                v.dedup();
                Cow::Owned(v)
            }
        })
    }

    /// Whether `sel` matches any item (evaluation stops at the first that matches).
    pub fn any_matching<'a>(
        &self,
        sel: &Selector,
        labels_of: impl Fn(usize) -> &'a InheritedLabels,
    ) -> bool {
        match self.candidates(sel) {
            Some(c) => c.iter().any(|&i| sel.evaluate(labels_of(i))),
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
                .iter()
                .copied()
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
            "has(nokey)",
            "nokey == 'x' && app == 'web'",
            "app in {'db', 'web', 'none'}",
            "app in {'web', 'web'} && has(ns)",
            "app in {'db', 'web'} && ns == 'b'",
            "tier == 'x' && has(app)",
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
