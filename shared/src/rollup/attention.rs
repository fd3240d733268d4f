//! On-page attention (v3): what a page's visitors saw, clicked and filled in, per page.
//!
//! It is one more top list per bucket, [`super::Dim::Attention`], keyed like the page
//! breakdowns — `path␟kind␟name` — so it is bounded, exact within its stored keys and folded
//! into `(other)` past them, like every other list. [`Kind`] says what an entry counts and which
//! of its counters mean what; see docs/attention.md.

use super::PAGE_ATTR_SEP;

/// Columns and rows of the click map: cells of 5 % of the page's width by 2 % of its height.
pub const GRID_COLS: u32 = 20;
pub const GRID_ROWS: u32 = 50;
/// Bins of the scroll map: pageviews that reached at least 5 %, 10 %, … 100 % of the page.
pub const SCROLL_BINS: usize = 20;
/// Scroll bins one entry carries (the counters of an entry): the map takes two entries.
pub const BINS_PER_ENTRY: usize = 10;

/// What an attention entry counts. Every entry ranks by `n`, its name is under the key's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A section (name: the section's name). `n` viewers; `ext[VISIBLE_MS]` visible time;
    /// text: its order, in decimal.
    Section,
    /// A call to action or anything clicked (name: the selector). `ext[VIEWERS]` pageviews that
    /// saw it, `ext[CLICKERS]` pageviews with a click on it, `n` their sum; text: the text a click
    /// on it reported.
    Cta,
    /// Rage clicks on a selector: `n`.
    Rage,
    /// Dead clicks on a selector: `n`.
    Dead,
    /// A form (name: its selector): `ext[STARTS]`, `ext[SUBMITS]`, `ext[ABANDONS]`, `n` their sum.
    Form,
    /// Abandons of a form at a field (name: `form␟field`): `n`.
    Abandon,
    /// Half of the scroll map (name `0` for bins 0-9, `1` for 10-19): `ext[i]` pageviews that
    /// reached bin `i` of the half; `n` their sum.
    Scroll,
    /// A cell of the click map (name `col.row`): `n` clicks.
    Cell,
}

/// Counter slots of [`Kind::Section`].
pub const VISIBLE_MS: usize = 0;
/// Counter slots of [`Kind::Cta`].
pub const VIEWERS: usize = 0;
pub const CLICKERS: usize = 1;
/// Counter slots of [`Kind::Form`].
pub const STARTS: usize = 0;
pub const SUBMITS: usize = 1;
pub const ABANDONS: usize = 2;

impl Kind {
    pub const ALL: [Kind; 8] =
        [Kind::Section, Kind::Cta, Kind::Rage, Kind::Dead, Kind::Form, Kind::Abandon, Kind::Scroll, Kind::Cell];

    fn code(self) -> &'static str {
        match self {
            Self::Section => "s",
            Self::Cta => "c",
            Self::Rage => "r",
            Self::Dead => "d",
            Self::Form => "f",
            Self::Abandon => "a",
            Self::Scroll => "m",
            Self::Cell => "g",
        }
    }
}

/// The key of an attention entry: `path␟kind␟name`.
pub fn key(path: &str, kind: Kind, name: &str) -> String {
    let mut k = String::with_capacity(path.len() + name.len() + 4);
    k.push_str(path);
    k.push(PAGE_ATTR_SEP);
    k.push_str(kind.code());
    k.push(PAGE_ATTR_SEP);
    k.push_str(name);
    k
}

/// Splits an attention key into path, kind and name.
pub fn split_key(key: &str) -> Option<(&str, Kind, &str)> {
    let mut parts = key.splitn(3, PAGE_ATTR_SEP);
    let path = parts.next()?;
    let code = parts.next()?;
    let kind = Kind::ALL.into_iter().find(|k| k.code() == code)?;
    Some((path, kind, parts.next()?))
}

/// The name of an abandon entry: the form and the field.
pub fn abandon_name(form: &str, field: &str) -> String {
    format!("{form}{PAGE_ATTR_SEP}{field}")
}

/// Splits an abandon entry's name into form and field.
pub fn split_abandon_name(name: &str) -> Option<(&str, &str)> {
    name.split_once(PAGE_ATTR_SEP)
}

/// The click-map cell of a click at (x, y), fractions of the page's width and height.
pub fn cell_of(x: f64, y: f64) -> (u32, u32) {
    let at = |f: f64, n: u32| ((f * f64::from(n)) as u32).min(n - 1);
    (at(x, GRID_COLS), at(y, GRID_ROWS))
}

/// The name of a click-map cell.
pub fn cell_name(col: u32, row: u32) -> String {
    format!("{col}.{row}")
}

/// Parses a cell name; `None` for a cell outside the grid.
pub fn parse_cell(name: &str) -> Option<(u32, u32)> {
    let (c, r) = name.split_once('.')?;
    let (c, r) = (c.parse().ok()?, r.parse().ok()?);
    (c < GRID_COLS && r < GRID_ROWS).then_some((c, r))
}

/// The scroll-map bins a scroll from `prev` to `depth` percent newly reaches: bin `i` is
/// "at least (i+1)×5 %".
pub fn bins_reached(prev: u8, depth: u8) -> impl Iterator<Item = usize> {
    (0..SCROLL_BINS).filter(move |i| {
        let mark = (*i as u32 + 1) * 5;
        u32::from(prev) < mark && mark <= u32::from(depth)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_with_separators_in_names() {
        let name = abandon_name("form#signup", "email");
        let k = key("/p", Kind::Abandon, &name);
        assert_eq!(split_key(&k), Some(("/p", Kind::Abandon, name.as_str())));
        assert_eq!(split_abandon_name(&name), Some(("form#signup", "email")));
        for kind in Kind::ALL {
            assert_eq!(split_key(&key("/", kind, "x")).map(|(_, k, _)| k), Some(kind));
        }
        assert_eq!(split_key("/p\u{1f}zz\u{1f}x"), None);
    }

    #[test]
    fn cells_and_bins_cover_the_edges() {
        assert_eq!(cell_of(0.0, 0.0), (0, 0));
        assert_eq!(cell_of(1.0, 1.0), (19, 49));
        assert_eq!(cell_of(0.05, 0.5), (1, 25));
        assert_eq!(parse_cell(&cell_name(19, 49)), Some((19, 49)));
        assert_eq!(parse_cell("20.0"), None);
        assert_eq!(bins_reached(0, 100).count(), 20);
        assert_eq!(bins_reached(0, 4).count(), 0);
        assert_eq!(bins_reached(4, 5).collect::<Vec<_>>(), vec![0]);
        assert_eq!(bins_reached(50, 61).collect::<Vec<_>>(), vec![10, 11]);
    }
}
