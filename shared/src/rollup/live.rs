//! One minute of a site's live view: pageviews, visitors, and the visitors of each page.
//!
//! The live view shows pageviews per minute for 30 minutes, visitors in the last 5 minutes
//! and the pages those visitors are on; it reads the minutes' documents (at most 31), never
//! raw events. Each minute keeps its visitors as a [`VisitorSketch`] (exact up to 1,024) and,
//! per page, the exact set of its visitors — bounded: at most [`MAX_PAGES`] pages and
//! [`MAX_PAGE_VISITORS`] visitors per page and minute; past those, a minute still counts its
//! pageviews and visitors, and a page its visitors up to the bound.

use std::collections::BTreeMap;

use super::{
    codec::{DecodeError, Reader, put_bytes, put_varint},
    sketch::VisitorSketch,
};

/// Most pages one minute keeps visitors for.
pub const MAX_PAGES: usize = 200;
/// Most visitors one page keeps per minute.
pub const MAX_PAGE_VISITORS: usize = 256;
const MAX_PATH: usize = 8 * 1024;

/// One minute of the live view.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveMinute {
    pub pageviews: u64,
    pub visitors: VisitorSketch,
    /// Page path → sorted visitor hashes.
    pub pages: BTreeMap<String, Vec<u64>>,
}

impl LiveMinute {
    /// Counts a pageview of `path` by `visitor` (a 64-bit visitor hash).
    pub fn add_pageview(&mut self, path: &str, visitor: u64) {
        self.pageviews += 1;
        self.add_visit(path, visitor);
    }

    /// Counts `visitor` as active on `path` (any event: someone still reading a page loaded
    /// earlier is on the site now).
    pub fn add_visit(&mut self, path: &str, visitor: u64) {
        self.visitors.insert(visitor);
        if !self.pages.contains_key(path) && self.pages.len() >= MAX_PAGES {
            return;
        }
        let set = self.pages.entry(path.to_string()).or_default();
        if let Err(at) = set.binary_search(&visitor)
            && set.len() < MAX_PAGE_VISITORS
        {
            set.insert(at, visitor);
        }
    }

    /// Adds another minute's content (the same minute from another flush).
    pub fn merge(&mut self, other: &LiveMinute) {
        self.pageviews += other.pageviews;
        self.visitors.merge(&other.visitors);
        for (path, visitors) in &other.pages {
            for &v in visitors {
                if !self.pages.contains_key(path) && self.pages.len() >= MAX_PAGES {
                    break;
                }
                let set = self.pages.entry(path.clone()).or_default();
                if let Err(at) = set.binary_search(&v)
                    && set.len() < MAX_PAGE_VISITORS
                {
                    set.insert(at, v);
                }
            }
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_varint(&mut out, self.pageviews);
        put_bytes(&mut out, &self.visitors.encode());
        put_varint(&mut out, self.pages.len() as u64);
        for (path, visitors) in &self.pages {
            put_bytes(&mut out, path.as_bytes());
            put_varint(&mut out, visitors.len() as u64);
            for v in visitors {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes, "live minute");
        let pageviews = r.varint()?;
        let sketch_len = r.len(1 << 20)?;
        let visitors = VisitorSketch::decode(r.bytes(sketch_len)?)?;
        let n = r.len(MAX_PAGES)?;
        let mut pages = BTreeMap::new();
        for _ in 0..n {
            let path = r.string(MAX_PATH)?;
            let count = r.len(MAX_PAGE_VISITORS)?;
            let mut set = Vec::with_capacity(count);
            for _ in 0..count {
                let raw = r.bytes(8)?;
                set.push(u64::from_le_bytes(raw.try_into().map_err(|_| DecodeError::new("live minute", "truncated"))?));
            }
            if set.windows(2).any(|w| w[0] >= w[1]) {
                return Err(DecodeError::new("live minute", "page visitors not sorted"));
            }
            pages.insert(path, set);
        }
        r.finish()?;
        Ok(Self { pageviews, visitors, pages })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_pageviews_visitors_and_page_visitors_within_bounds() {
        let mut m = LiveMinute::default();
        m.add_pageview("/", 1);
        m.add_pageview("/", 1);
        m.add_pageview("/pricing", 1);
        m.add_pageview("/pricing", 2);
        assert_eq!((m.pageviews, m.visitors.count()), (4, 2));
        assert_eq!(m.pages["/pricing"], vec![1, 2]);
        for i in 0..(MAX_PAGES as u64 + 10) {
            m.add_pageview(&format!("/p{i}"), 1000 + i);
        }
        assert_eq!(m.pages.len(), MAX_PAGES, "pages bounded");
        for v in 0..1000 {
            m.add_pageview("/", v);
        }
        assert_eq!(m.pages["/"].len(), MAX_PAGE_VISITORS, "visitors per page bounded");
        let back = LiveMinute::decode(&m.encode()).expect("decodes");
        assert_eq!(back, m);
        assert!(LiveMinute::decode(&m.encode()[..10]).is_err());
    }

    #[test]
    fn merging_the_same_minute_unites_its_visitors() {
        let (mut a, mut b) = (LiveMinute::default(), LiveMinute::default());
        a.add_pageview("/", 1);
        b.add_pageview("/", 1);
        b.add_pageview("/", 2);
        a.merge(&b);
        assert_eq!((a.pageviews, a.visitors.count(), a.pages["/"].len()), (3, 2, 2));
    }
}
