//! The attention view of one page (`GET /api/stats/{id}/page`): what its visitors saw, clicked
//! and filled in, from the page's entries of the attention lists (see
//! `shared::rollup::attention` and docs/attention.md).
//!
//! [`PageAttention`] sums a range's entries of one path as they are read — every list it
//! keeps is bounded by what the page can report (50 sections, the grid's 1,000 cells) or by
//! [`MAX_NAMES`], past which names add to `(other)` — and [`PageAttention::finish`] ranks them.

use std::collections::HashMap;

use serde::Serialize;
use shared::rollup::{
    Counts,
    attention::{self, GRID_COLS, GRID_ROWS, Kind, SCROLL_BINS},
    toplist,
};

use crate::stats_store::KindSums;

/// Rows of each ranked list in the answer.
pub const LIST_ROWS: usize = 20;
/// Most distinct names summed per kind over a range (a page whose selectors change every day
/// of a year); past it, names add to `(other)`.
const MAX_NAMES: usize = 5_000;

#[derive(Debug, Serialize, PartialEq)]
pub struct Section {
    pub name: String,
    pub order: u8,
    pub viewers: u64,
    pub view_rate: f64,
    pub avg_visible_seconds: f64,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Cta {
    pub selector: String,
    pub text: String,
    pub viewers: u64,
    pub clickers: u64,
    pub ctr: f64,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct SelectorCount {
    pub selector: String,
    pub count: u64,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct FieldCount {
    pub field: String,
    pub count: u64,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Form {
    pub form: String,
    pub starts: u64,
    pub submits: u64,
    pub abandons: Vec<FieldCount>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct ClickMap {
    pub cols: u32,
    pub rows: u32,
    /// `[col, row, clicks]` of the non-empty cells, by column then row.
    pub cells: Vec<[u64; 3]>,
}

/// The answer of `GET /api/stats/{id}/page`.
#[derive(Debug, Serialize, PartialEq)]
pub struct PageView {
    pub path: String,
    pub pageviews: u64,
    pub visitors: u64,
    pub sections: Vec<Section>,
    pub ctas: Vec<Cta>,
    pub rage_clicks: Vec<SelectorCount>,
    pub dead_clicks: Vec<SelectorCount>,
    pub forms: Vec<Form>,
    pub scroll_map: Vec<u64>,
    pub click_map: ClickMap,
}

/// One name's sums: its counts and the greatest text seen.
type Sums = HashMap<String, (Counts, Option<String>)>;

/// A page's attention entries summed over a range.
pub struct PageAttention {
    pageviews: u64,
    visitors: u64,
    sums: KindSums<Kind>,
}

impl Default for PageAttention {
    fn default() -> Self {
        Self { pageviews: 0, visitors: 0, sums: KindSums::new(MAX_NAMES) }
    }
}

impl PageAttention {
    /// Adds the page's own entry of a bucket's page list.
    pub fn add_page(&mut self, c: &Counts) {
        self.pageviews += c.n;
        self.visitors += c.ext[toplist::page_ext::VISITORS];
    }

    /// Adds an entry of a bucket's attention list (entries of other pages are the caller's to
    /// skip).
    pub fn add(&mut self, kind: Kind, name: &str, counts: Counts, text: Option<&str>) {
        self.sums.add(kind, name, counts, text);
    }

    pub fn finish(mut self, path: &str) -> PageView {
        let mut take = |k: Kind| self.sums.take(&k);
        let (sections, ctas, rage, dead, forms, abandons, scroll, cells) = (
            take(Kind::Section),
            take(Kind::Cta),
            take(Kind::Rage),
            take(Kind::Dead),
            take(Kind::Form),
            take(Kind::Abandon),
            take(Kind::Scroll),
            take(Kind::Cell),
        );
        let pageviews = self.pageviews;
        PageView {
            path: path.to_string(),
            pageviews,
            visitors: self.visitors,
            sections: sections_of(sections, pageviews),
            ctas: ctas_of(ctas),
            rage_clicks: counted(rage),
            dead_clicks: counted(dead),
            forms: forms_of(forms, abandons),
            scroll_map: scroll_map(&scroll),
            click_map: click_map(&cells),
        }
    }
}

/// `a / b` to 4 decimals, 0 when `b` is 0.
fn rate(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { (a as f64 / b as f64 * 10_000.0).round() / 10_000.0 }
}

/// Most first, ties by name, at most [`LIST_ROWS`].
fn ranked<T>(mut rows: Vec<T>, key: impl Fn(&T) -> (u64, &str)) -> Vec<T> {
    rows.sort_by(|a, b| {
        let (ka, kb) = (key(a), key(b));
        kb.0.cmp(&ka.0).then_with(|| ka.1.cmp(kb.1))
    });
    rows.truncate(LIST_ROWS);
    rows
}

fn sections_of(sums: Sums, pageviews: u64) -> Vec<Section> {
    let mut rows: Vec<Section> = sums
        .into_iter()
        .filter(|(_, (c, _))| c.n > 0)
        .map(|(name, (c, order))| Section {
            order: order.and_then(|o| o.parse().ok()).unwrap_or(u8::MAX),
            view_rate: rate(c.n, pageviews),
            avg_visible_seconds: if c.n == 0 {
                0.0
            } else {
                (c.ext[attention::VISIBLE_MS] as f64 / 1000.0 / c.n as f64 * 10.0).round() / 10.0
            },
            viewers: c.n,
            name,
        })
        .collect();
    rows.sort_by(|a, b| a.order.cmp(&b.order).then_with(|| a.name.cmp(&b.name)));
    rows.truncate(usize::from(shared::event::MAX_SECTIONS));
    rows
}

fn ctas_of(sums: Sums) -> Vec<Cta> {
    let rows = sums
        .into_iter()
        // Only what was reported seen as a CTA: clicks on other elements are the click map's.
        .filter(|(_, (c, _))| c.ext[attention::VIEWERS] > 0)
        .map(|(selector, (c, text))| {
            // A click on a CTA counts as seen (the tracker reports a CTA clicked before it was
            // seen as seen; a pageview split over two days may count the view in one only).
            let clickers = c.ext[attention::CLICKERS];
            let viewers = c.ext[attention::VIEWERS].max(clickers);
            Cta { selector, text: text.unwrap_or_default(), viewers, clickers, ctr: rate(clickers, viewers) }
        })
        .collect();
    ranked(rows, |c| (c.viewers, &c.selector))
}

fn counted(sums: Sums) -> Vec<SelectorCount> {
    let rows = sums.into_iter().map(|(selector, (c, _))| SelectorCount { selector, count: c.n }).collect();
    ranked(rows, |r| (r.count, &r.selector))
}

fn forms_of(forms: Sums, abandons: Sums) -> Vec<Form> {
    let mut fields: HashMap<String, Vec<FieldCount>> = HashMap::new();
    for (name, (c, _)) in abandons {
        let (form, field) = attention::split_abandon_name(&name).unwrap_or((toplist::OTHER, toplist::OTHER));
        fields.entry(form.to_string()).or_default().push(FieldCount { field: field.to_string(), count: c.n });
    }
    let rows = forms
        .into_iter()
        .map(|(form, (c, _))| Form {
            abandons: ranked(fields.remove(&form).unwrap_or_default(), |f| (f.count, &f.field)),
            starts: c.ext[attention::STARTS],
            submits: c.ext[attention::SUBMITS],
            form,
        })
        .collect();
    ranked(rows, |f| (f.starts.max(f.submits), &f.form))
}

fn scroll_map(halves: &Sums) -> Vec<u64> {
    let mut out = vec![0; SCROLL_BINS];
    for (i, half) in ["0", "1"].iter().enumerate() {
        if let Some((c, _)) = halves.get(*half) {
            for j in 0..attention::BINS_PER_ENTRY {
                out[i * attention::BINS_PER_ENTRY + j] += c.ext[j];
            }
        }
    }
    out
}

fn click_map(cells: &Sums) -> ClickMap {
    let mut out: Vec<[u64; 3]> = cells
        .iter()
        .filter_map(|(name, (c, _))| attention::parse_cell(name).map(|(col, row)| [u64::from(col), u64::from(row), c.n]))
        .filter(|c| c[2] > 0)
        .collect();
    out.sort_unstable();
    ClickMap { cols: GRID_COLS, rows: GRID_ROWS, cells: out }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(n: u64, slots: &[(usize, u64)]) -> Counts {
        let mut c = Counts::of(n);
        slots.iter().for_each(|&(i, v)| c.ext[i] = v);
        c
    }

    #[test]
    fn rates_ranks_and_maps_follow_the_contract() {
        let mut p = PageAttention::default();
        p.add_page(&with(4, &[(toplist::page_ext::VISITORS, 3)]));
        p.add(Kind::Section, "pricing", with(1, &[(attention::VISIBLE_MS, 1500)]), Some("03"));
        p.add(Kind::Section, "pricing", with(2, &[(attention::VISIBLE_MS, 3000)]), Some("03"));
        p.add(Kind::Section, "hero", with(4, &[(attention::VISIBLE_MS, 10_000)]), Some("00"));
        p.add(Kind::Cta, "a#buy", with(3, &[(attention::VIEWERS, 3)]), None);
        p.add(Kind::Cta, "a#buy", with(1, &[(attention::CLICKERS, 1)]), Some("Buy now"));
        // Seen in one bucket, clicked in two: every clicker saw it.
        p.add(Kind::Cta, "button#go", with(1, &[(attention::VIEWERS, 1)]), None);
        p.add(Kind::Cta, "button#go", with(2, &[(attention::CLICKERS, 2)]), None);
        // Clicked, never reported as a CTA: not a CTA.
        p.add(Kind::Cta, "div.card", with(5, &[(attention::CLICKERS, 5)]), None);
        p.add(Kind::Rage, "img.hero", Counts::of(2), None);
        p.add(Kind::Form, "form#signup", with(3, &[(attention::STARTS, 2), (attention::SUBMITS, 1)]), None);
        p.add(Kind::Abandon, &attention::abandon_name("form#signup", "email"), Counts::of(1), None);
        p.add(Kind::Scroll, "0", with(7, &[(0, 4), (1, 3)]), None);
        p.add(Kind::Scroll, "1", with(1, &[(9, 1)]), None);
        p.add(Kind::Cell, "19.49", Counts::of(2), None);
        p.add(Kind::Cell, "0.3", Counts::of(1), None);
        let v = p.finish("/p");
        assert_eq!((v.pageviews, v.visitors), (4, 3));
        assert_eq!(
            v.sections,
            vec![
                Section { name: "hero".into(), order: 0, viewers: 4, view_rate: 1.0, avg_visible_seconds: 2.5 },
                Section { name: "pricing".into(), order: 3, viewers: 3, view_rate: 0.75, avg_visible_seconds: 1.5 },
            ]
        );
        assert_eq!(
            v.ctas,
            vec![
                Cta { selector: "a#buy".into(), text: "Buy now".into(), viewers: 3, clickers: 1, ctr: 0.3333 },
                Cta { selector: "button#go".into(), text: String::new(), viewers: 2, clickers: 2, ctr: 1.0 },
            ]
        );
        assert_eq!(v.rage_clicks, vec![SelectorCount { selector: "img.hero".into(), count: 2 }]);
        assert!(v.dead_clicks.is_empty());
        assert_eq!(
            v.forms,
            vec![Form {
                form: "form#signup".into(),
                starts: 2,
                submits: 1,
                abandons: vec![FieldCount { field: "email".into(), count: 1 }]
            }]
        );
        let mut scroll = vec![0; 20];
        (scroll[0], scroll[1], scroll[19]) = (4, 3, 1);
        assert_eq!(v.scroll_map, scroll);
        assert_eq!(v.click_map, ClickMap { cols: 20, rows: 50, cells: vec![[0, 3, 1], [19, 49, 2]] });
    }

    #[test]
    fn lists_hold_twenty_rows_and_rates_are_zero_without_a_divisor() {
        let mut p = PageAttention::default();
        for i in 0..30 {
            p.add(Kind::Dead, &format!("div.d{i:02}"), Counts::of(1 + i % 3), None);
        }
        p.add(Kind::Section, "late", with(1, &[]), Some("07"));
        let v = p.finish("/p");
        assert_eq!(v.dead_clicks.len(), LIST_ROWS);
        assert_eq!(v.dead_clicks[0], SelectorCount { selector: "div.d02".into(), count: 3 });
        assert_eq!(v.sections[0].view_rate, 0.0, "no pageviews in range");
    }
}
