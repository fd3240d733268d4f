//! What a User-Agent says about the visitor: device class, browser and OS family, or that it is
//! a bot (then the batch is answered 202 and published nowhere).
//!
//! - Bots are recognised by the `isbot` crate, which embeds the pattern list of the isbot
//!   project (crawlers, monitors, HTTP libraries, headless browsers), and by woothee's own
//!   crawler list. The reason label of the bot metric is derived from the matched string only
//!   to keep the metric readable; recognising is the lists' job.
//! - Browser, OS and device come from the `woothee` crate; woothee has no tablet class, so an
//!   iPad, or an Android device whose User-Agent lacks `Mobile`, is a tablet (the convention
//!   Android browsers follow).
//!
//! Both are regular-expression work on every call, and a site's visitors use a few hundred
//! distinct User-Agents, so verdicts are memoized per User-Agent string in a bounded cache.
//! Only the verdict is kept; the User-Agent itself never leaves ingest.

use quick_cache::sync::Cache;
use shared::audience::{Browser, Device, Os};

/// Distinct User-Agents remembered. Each entry is at most [`MAX_CACHED_UA_BYTES`] of key.
const CACHE_ENTRIES: usize = 20_000;
/// Longer User-Agents are classified on every request instead of being remembered, so that
/// nobody can fill the cache with huge keys (real ones are 100-300 bytes).
const MAX_CACHED_UA_BYTES: usize = 512;

/// Device, browser and OS of a human visitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Audience {
    pub device: Device,
    pub browser: Browser,
    pub os: Os,
}

/// Why a User-Agent was taken for a bot: the bot metric's `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BotReason {
    /// A headless or automated browser (HeadlessChrome, PhantomJS, Lighthouse, …).
    Headless,
    /// An uptime or performance monitor.
    Monitor,
    /// An HTTP library or command-line client (curl, python-requests, Go, Java, …).
    HttpClient,
    /// A crawler, spider, preview fetcher or any other listed bot.
    Crawler,
}

impl BotReason {
    pub const ALL: [BotReason; 4] = [Self::Headless, Self::Monitor, Self::HttpClient, Self::Crawler];

    /// This reason's position in [`BotReason::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Headless => "headless",
            Self::Monitor => "monitor",
            Self::HttpClient => "http_client",
            Self::Crawler => "crawler",
        }
    }
}

/// The verdict on one User-Agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Human(Audience),
    Bot(BotReason),
}

/// Classifies User-Agents, remembering recent verdicts.
pub struct UserAgents {
    parser: woothee::parser::Parser,
    bots: isbot::Bots,
    cache: Cache<String, Verdict>,
}

impl Default for UserAgents {
    fn default() -> Self {
        Self::new()
    }
}

impl UserAgents {
    pub fn new() -> Self {
        Self { parser: woothee::parser::Parser::new(), bots: isbot::Bots::default(), cache: Cache::new(CACHE_ENTRIES) }
    }

    /// The verdict on `user_agent` (empty when the header is absent: a human of unknown kind).
    pub fn classify(&self, user_agent: &str) -> Verdict {
        if user_agent.len() > MAX_CACHED_UA_BYTES {
            return self.classify_uncached(user_agent);
        }
        if let Some(verdict) = self.cache.get(user_agent) {
            return verdict;
        }
        let verdict = self.classify_uncached(user_agent);
        self.cache.insert(user_agent.to_owned(), verdict);
        verdict
    }

    fn classify_uncached(&self, user_agent: &str) -> Verdict {
        // No User-Agent is not a known bot: API clients of customers' own and privacy tools
        // strip it, and counting them beats losing them.
        if user_agent.is_empty() {
            return Verdict::Human(Audience::default());
        }
        if self.bots.is_bot(user_agent) {
            return Verdict::Bot(bot_reason(user_agent));
        }
        match self.parser.parse(user_agent) {
            Some(r) if r.category == "crawler" => Verdict::Bot(bot_reason(user_agent)),
            Some(r) => Verdict::Human(audience(&r, user_agent)),
            None => Verdict::Human(Audience::default()),
        }
    }
}

fn audience(r: &woothee::parser::WootheeResult<'_>, user_agent: &str) -> Audience {
    let os = match r.os {
        "Mac OSX" => Os::MacOs,
        "iPhone" | "iPad" | "iPod" | "iOS" => Os::Ios,
        "Android" => Os::Android,
        "Linux" => Os::Linux,
        "Windows Phone OS" | "Windows CE" => Os::Other,
        name if name.starts_with("Windows") => Os::Windows,
        _ => Os::Other,
    };
    let browser = match r.name {
        "Chrome" => Browser::Chrome,
        "Firefox" => Browser::Firefox,
        "Safari" => Browser::Safari,
        "Edge" => Browser::Edge,
        _ => Browser::Other,
    };
    let device = match r.category {
        "smartphone" | "mobilephone" => {
            let tablet =
                r.os == "iPad" || user_agent.contains("Tablet") || (os == Os::Android && !user_agent.contains("Mobile"));
            if tablet { Device::Tablet } else { Device::Mobile }
        }
        _ => Device::Desktop,
    };
    Audience { device, browser, os }
}

/// Labels a bot for the metric; the lists already decided that it is one.
fn bot_reason(user_agent: &str) -> BotReason {
    const HEADLESS: [&str; 7] = ["headless", "phantomjs", "lighthouse", "puppeteer", "playwright", "selenium", "webdriver"];
    const MONITOR: [&str; 8] = ["monitor", "uptime", "pingdom", "statuscake", "site24x7", "datadog", "newrelic", "check"];
    const HTTP_CLIENT: [&str; 18] = [
        "curl",
        "wget",
        "python",
        "java/",
        "go-http-client",
        "okhttp",
        "axios",
        "node-fetch",
        "undici",
        "libwww",
        "httpclient",
        "ruby",
        "php/",
        "perl",
        "postman",
        "guzzle",
        "httpie",
        "aiohttp",
    ];
    let ua = user_agent.to_ascii_lowercase();
    let any = |needles: &[&str]| needles.iter().any(|n| ua.contains(n));
    if any(&HEADLESS) {
        BotReason::Headless
    } else if any(&MONITOR) {
        BotReason::Monitor
    } else if any(&HTTP_CLIENT) {
        BotReason::HttpClient
    } else {
        BotReason::Crawler
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn human(device: Device, browser: Browser, os: Os) -> Verdict {
        Verdict::Human(Audience { device, browser, os })
    }

    #[test]
    fn real_browsers_are_classified() {
        use Browser as B;
        use Device as D;
        use Os as O;
        let cases = [
            (
                "Chrome on Windows",
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
                human(D::Desktop, B::Chrome, O::Windows),
            ),
            (
                "Chrome on macOS",
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
                human(D::Desktop, B::Chrome, O::MacOs),
            ),
            (
                "Chrome on Linux",
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
                human(D::Desktop, B::Chrome, O::Linux),
            ),
            (
                "Chrome on Android phone",
                "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
                human(D::Mobile, B::Chrome, O::Android),
            ),
            (
                "Chrome on Android tablet",
                "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
                human(D::Tablet, B::Chrome, O::Android),
            ),
            (
                "Chrome on iPhone",
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1",
                human(D::Mobile, B::Chrome, O::Ios),
            ),
            (
                "Chrome on ChromeOS",
                "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
                human(D::Desktop, B::Chrome, O::Other),
            ),
            (
                "Firefox on Windows",
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
                human(D::Desktop, B::Firefox, O::Windows),
            ),
            (
                "Firefox on Linux",
                "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
                human(D::Desktop, B::Firefox, O::Linux),
            ),
            (
                "Firefox on macOS",
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.4; rv:125.0) Gecko/20100101 Firefox/125.0",
                human(D::Desktop, B::Firefox, O::MacOs),
            ),
            (
                "Firefox on Android",
                "Mozilla/5.0 (Android 14; Mobile; rv:125.0) Gecko/125.0 Firefox/125.0",
                human(D::Mobile, B::Firefox, O::Android),
            ),
            (
                "Firefox on iPhone",
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/125.0 Mobile/15E148 Safari/605.1.15",
                human(D::Mobile, B::Firefox, O::Ios),
            ),
            (
                "Safari on macOS",
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15",
                human(D::Desktop, B::Safari, O::MacOs),
            ),
            (
                "Safari on iPhone",
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1",
                human(D::Mobile, B::Safari, O::Ios),
            ),
            (
                "Safari on iPad",
                "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
                human(D::Tablet, B::Safari, O::Ios),
            ),
            (
                "Edge on Windows",
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80",
                human(D::Desktop, B::Edge, O::Windows),
            ),
            (
                "Edge on macOS",
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80",
                human(D::Desktop, B::Edge, O::MacOs),
            ),
            (
                "Edge on Android",
                "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36 EdgA/124.0.2478.64",
                human(D::Mobile, B::Edge, O::Android),
            ),
            (
                "Edge on iPhone",
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 EdgiOS/124.2478.71 Mobile/15E148 Safari/605.1.15",
                human(D::Mobile, B::Edge, O::Ios),
            ),
            (
                "Samsung Internet",
                "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36",
                human(D::Mobile, B::Other, O::Android),
            ),
            (
                "Opera on Windows",
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 OPR/109.0.0.0",
                human(D::Desktop, B::Other, O::Windows),
            ),
            ("no User-Agent", "", human(D::Desktop, B::Other, O::Other)),
            ("unknown", "SomethingNew/1.0 (Fridge OS)", human(D::Desktop, B::Other, O::Other)),
        ];
        let agents = UserAgents::new();
        for (case, ua, want) in cases {
            assert_eq!(agents.classify(ua), want, "case {case}: {ua}");
            assert_eq!(agents.classify(ua), want, "case {case}: remembered verdict");
        }
    }

    #[test]
    fn bots_are_recognised_with_a_bounded_reason() {
        let cases = [
            (
                "Debian Chromium headless",
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.6099.224 Safari/537.36",
                BotReason::Headless,
            ),
            (
                "PhantomJS",
                "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) PhantomJS/2.1.1 Safari/538.1",
                BotReason::Headless,
            ),
            (
                "Lighthouse",
                "Mozilla/5.0 (Linux; Android 11; moto g power (2022)) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Mobile Safari/537.36 Chrome-Lighthouse",
                BotReason::Headless,
            ),
            ("Googlebot", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", BotReason::Crawler),
            (
                "Googlebot smartphone",
                "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.91 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
                BotReason::Crawler,
            ),
            ("Bingbot", "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", BotReason::Crawler),
            (
                "GPTBot",
                "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
                BotReason::Crawler,
            ),
            (
                "Baidu spider",
                "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
                BotReason::Crawler,
            ),
            (
                "Facebook preview",
                "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
                BotReason::Crawler,
            ),
            ("Slack preview", "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", BotReason::Crawler),
            ("curl", "curl/8.5.0", BotReason::HttpClient),
            ("python-requests", "python-requests/2.31.0", BotReason::HttpClient),
            ("Go", "Go-http-client/1.1", BotReason::HttpClient),
            ("wget", "Wget/1.21.4", BotReason::HttpClient),
            ("axios", "axios/1.6.8", BotReason::HttpClient),
            ("Pingdom", "Pingdom.com_bot_version_1.4_(http://www.pingdom.com/)", BotReason::Monitor),
            ("UptimeRobot", "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)", BotReason::Monitor),
        ];
        let agents = UserAgents::new();
        for (case, ua, want) in cases {
            assert_eq!(agents.classify(ua), Verdict::Bot(want), "case {case}: {ua}");
        }
    }

    #[test]
    fn long_user_agents_are_classified_but_not_remembered() {
        let agents = UserAgents::new();
        let long =
            format!("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0 {}", "x".repeat(600));
        assert_eq!(agents.classify(&long), human(Device::Desktop, Browser::Firefox, Os::Windows));
        assert_eq!(agents.cache.len(), 0);
    }
}
