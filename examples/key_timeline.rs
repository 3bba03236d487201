//! Draws the signing-key lifecycle picture of docs/keys.md from the real planner.
//!
//! It steps `latchkey::keys::lifecycle::plan` hourly through 100 simulated days for one
//! algorithm with the default settings, applies each `KeyChange` the way the store does
//! (src/store/keys.rs), records when every key was published, activated, retired and removed,
//! checks the lifecycle's promises on the way, and writes the timeline as an SVG:
//!
//! ```text
//! cargo run --example key_timeline -- docs/key-timeline.svg
//! ```
//!
//! No drawing library: the SVG is written as text.

use std::fmt::Write as _;
use std::path::PathBuf;

use latchkey::config::{Settings, CLOCK_SKEW_LEEWAY_SECS};
use latchkey::domain::{KeyRecord, KeyStatus, SigningAlg};
use latchkey::keys::lifecycle::{plan, KeyChange, LifecyclePolicy};

const MINUTE: i64 = 60;
const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;
/// How far the simulation runs.
const SIMULATED: i64 = 100 * DAY;
/// How often the simulated replica steps (real replicas step every `key_reload_interval`).
const STEP: i64 = HOUR;
const ALG: SigningAlg = SigningAlg::Es256;

type Error = Box<dyn std::error::Error>;

/// What happened to one key, in simulated seconds since the first key was made.
#[derive(Clone, Debug)]
struct Life {
    label: String,
    published: i64,
    activated: Option<i64>,
    retired: Option<i64>,
    removed: Option<i64>,
}

fn key(kid: String, status: KeyStatus, now: i64) -> KeyRecord {
    KeyRecord {
        kid,
        alg: ALG,
        status,
        sealed_private_key: Vec::new(),
        public_jwk: serde_json::Value::Null,
        created_at: now,
        activates_at: now,
        retired_at: None,
        removes_at: None,
    }
}

fn life_of<'a>(lives: &'a mut [Life], kid: &str) -> Result<&'a mut Life, Error> {
    lives.iter_mut().find(|l| l.label == kid).ok_or_else(|| format!("no key {kid}").into())
}

/// Runs the lifecycle from a first active key (as `ensure_initial_keys` makes at first start).
fn simulate(policy: &LifecyclePolicy) -> Result<Vec<Life>, Error> {
    let mut records = vec![key("key 1".into(), KeyStatus::Active, 0)];
    let mut lives =
        vec![Life { label: "key 1".into(), published: 0, activated: Some(0), retired: None, removed: None }];
    let mut made = 1;
    let mut now = 0;
    while now <= SIMULATED {
        let changes = plan(&records, now, policy, &mut |_alg| {
            made += 1;
            Some(key(format!("key {made}"), KeyStatus::Next, now))
        });
        for change in changes {
            match change {
                KeyChange::Publish(new) => {
                    lives.push(Life {
                        label: new.kid.clone(),
                        published: now,
                        activated: None,
                        retired: None,
                        removed: None,
                    });
                    records.push(new);
                }
                // As the store: retire the active key first, then activate the next one.
                KeyChange::Activate { kid, retire, retired_at, removes_at } => {
                    if let Some(old) = retire {
                        for r in records.iter_mut().filter(|r| r.kid == old && r.status == KeyStatus::Active) {
                            r.status = KeyStatus::Retired;
                            r.retired_at = Some(retired_at);
                            r.removes_at = Some(removes_at);
                        }
                        life_of(&mut lives, &old)?.retired = Some(now);
                    }
                    for r in records.iter_mut().filter(|r| r.kid == kid && r.status == KeyStatus::Next) {
                        r.status = KeyStatus::Active;
                    }
                    life_of(&mut lives, &kid)?.activated = Some(now);
                }
                KeyChange::Remove { kid } => {
                    records.retain(|r| !(r.kid == kid && r.status == KeyStatus::Retired));
                    life_of(&mut lives, &kid)?.removed = Some(now);
                }
            }
        }
        check(&records, &lives, policy, now)?;
        now += STEP;
    }
    Ok(lives)
}

/// The promises the picture illustrates, checked at every step (the unit and API tests check
/// them too; a picture of a broken lifecycle should not be drawn).
fn check(records: &[KeyRecord], lives: &[Life], policy: &LifecyclePolicy, now: i64) -> Result<(), Error> {
    let count = |status| records.iter().filter(|r| r.status == status).count();
    if count(KeyStatus::Active) != 1 || count(KeyStatus::Next) > 1 {
        return Err(format!(
            "at {}: {} active and {} next keys",
            when(now),
            count(KeyStatus::Active),
            count(KeyStatus::Next)
        )
        .into());
    }
    for life in lives.iter().filter(|l| l.published > 0) {
        if let Some(active) = life.activated {
            if active - life.published < policy.publish_ahead {
                return Err(format!("{} signed {}s after it was published", life.label, active - life.published).into());
            }
        }
    }
    for life in lives {
        if let (Some(retired), Some(removed)) = (life.retired, life.removed) {
            if removed - retired < policy.retention {
                return Err(format!("{} removed {}s after it retired", life.label, removed - retired).into());
            }
        }
    }
    Ok(())
}

/// A duration in the settings' own notation (`30d`, `5m`, `10s`).
fn human(secs: i64) -> String {
    for (unit, size) in [("d", DAY), ("h", HOUR), ("m", MINUTE)] {
        if secs >= size && secs % size == 0 {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

/// A simulated time as `day 29 01:00`.
fn when(t: i64) -> String {
    format!("day {} {:02}:{:02}", t / DAY, t % DAY / HOUR, t % HOUR / MINUTE)
}

fn esc(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

const NEXT: &str = "#E69F00";
const ACTIVE: &str = "#0072B2";
const RETIRED: &str = "#A7A7A7";
const INK: &str = "#1F2328";
const MUTED: &str = "#57606A";
const GRID: &str = "#D8DEE4";

/// A horizontal stretch of simulated time mapped onto x pixels.
struct Axis {
    x0: f64,
    x1: f64,
    t0: i64,
    t1: i64,
}

impl Axis {
    fn x(&self, t: i64) -> f64 {
        let t = t.clamp(self.t0, self.t1);
        self.x0 + (self.x1 - self.x0) * (t - self.t0) as f64 / (self.t1 - self.t0) as f64
    }
}

struct Svg(String);

impl Svg {
    fn text(&mut self, x: f64, y: f64, size: u32, anchor: &str, style: &str, body: &str) {
        let _ = writeln!(
            self.0,
            r##"<text x="{x:.1}" y="{y:.1}" font-size="{size}" text-anchor="{anchor}" {style}>{}</text>"##,
            esc(body)
        );
    }

    fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: &str, extra: &str) {
        let _ =
            writeln!(self.0, r##"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="{fill}" {extra}/>"##);
    }

    fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, stroke: &str, extra: &str) {
        let _ = writeln!(
            self.0,
            r##"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" stroke="{stroke}" {extra}/>"##
        );
    }

    /// A dimension line with arrowheads at both ends and a label above its middle.
    fn span(&mut self, a: f64, b: f64, y: f64, label: &str, size: u32) {
        self.line(a, y, b, y, INK, r##"stroke-width="1.4" marker-start="url(#arrow)" marker-end="url(#arrow)""##);
        self.line(a, y - 6.0, a, y + 6.0, INK, r##"stroke-width="1.4""##);
        self.line(b, y - 6.0, b, y + 6.0, INK, r##"stroke-width="1.4""##);
        self.text((a + b) / 2.0, y - 7.0, size, "middle", r##"fill="#1F2328""##, label);
    }
}

/// The segments of one key's life: (from, to, status); `to` is None while it lasts.
fn segments(life: &Life) -> Vec<(i64, Option<i64>, KeyStatus)> {
    let mut out = Vec::new();
    let signs = life.activated;
    if signs != Some(life.published) {
        out.push((life.published, signs, KeyStatus::Next));
    }
    if let Some(from) = signs {
        out.push((from, life.retired, KeyStatus::Active));
    }
    if let Some(from) = life.retired {
        out.push((from, life.removed, KeyStatus::Retired));
    }
    out
}

fn colour(status: KeyStatus) -> (&'static str, &'static str) {
    match status {
        KeyStatus::Next => (NEXT, INK),
        KeyStatus::Active => (ACTIVE, "#FFFFFF"),
        KeyStatus::Retired => (RETIRED, INK),
    }
}

/// One lane per key: coloured bars, a black bar where the key leaves the JWKS, an arrow where
/// it outlives the window. `words` writes the status inside bars wide enough for it.
fn lanes(svg: &mut Svg, axis: &Axis, lives: &[&Life], top: f64, lane: f64, bar: f64, words: bool) {
    for (i, life) in lives.iter().enumerate() {
        let y = top + lane * i as f64;
        if i % 2 == 0 {
            svg.rect(axis.x0, y, axis.x1 - axis.x0, lane, "#F6F8FA", "");
        }
        svg.text(
            axis.x0 - 14.0,
            y + lane / 2.0 + 5.0,
            15,
            "end",
            r##"fill="#1F2328" font-weight="bold""##,
            &life.label,
        );
        let by = y + (lane - bar) / 2.0;
        for (from, to, status) in segments(life) {
            let end = to.unwrap_or(SIMULATED + DAY);
            if end <= axis.t0 || from >= axis.t1 {
                continue;
            }
            let (a, b) = (axis.x(from), axis.x(end));
            let (fill, ink) = colour(status);
            svg.rect(a, by, (b - a).max(1.5), bar, fill, r##"stroke="#FFFFFF" stroke-width="0.8""##);
            if words && b - a > 70.0 {
                let style = format!(r##"fill="{ink}" font-weight="bold""##);
                svg.text((a + b) / 2.0, by + bar / 2.0 + 5.0, 14, "middle", &style, status.as_str());
            }
            if end > axis.t1 {
                // Still going where the window ends.
                let _ = writeln!(
                    svg.0,
                    r##"<path d="M{:.1},{:.1} l9,{:.1} l-9,{:.1} z" fill="{fill}"/>"##,
                    b,
                    by - 3.0,
                    bar / 2.0 + 3.0,
                    bar / 2.0 + 3.0
                );
            }
        }
        if let Some(gone) = life.removed.filter(|t| (axis.t0..=axis.t1).contains(t)) {
            let x = axis.x(gone);
            svg.rect(x - 1.5, by - 5.0, 3.0, bar + 10.0, INK, "");
        }
    }
}

fn grid(svg: &mut Svg, axis: &Axis, top: f64, bottom: f64, every: i64, label: &dyn Fn(i64) -> String) {
    let mut t = axis.t0.div_euclid(every) * every;
    while t <= axis.t1 {
        if t >= axis.t0 {
            let x = axis.x(t);
            svg.line(x, top, x, bottom, GRID, r##"stroke-width="1""##);
            svg.line(x, bottom, x, bottom + 6.0, MUTED, r##"stroke-width="1""##);
            svg.text(x, bottom + 22.0, 13, "middle", r##"fill="#57606A""##, &label(t));
        }
        t += every;
    }
    svg.line(axis.x0, bottom, axis.x1, bottom, MUTED, r##"stroke-width="1""##);
}

fn draw(lives: &[Life], settings: &Settings) -> Result<String, Error> {
    let policy = settings.key_lifecycle();
    let (width, left, right) = (1200.0, 150.0, 1160.0);
    let mut svg = Svg(String::new());

    // Heading and legend.
    svg.text(
        40.0,
        42.0,
        22,
        "start",
        r##"fill="#1F2328" font-weight="bold""##,
        "Signing-key lifecycle: next → active → retired → removed",
    );
    let subtitle = [
        format!(
            "One algorithm ({ALG}), default settings: key_rotation_interval {}, key_publish_ahead {}, key_retention {}.",
            human(policy.rotation_interval),
            human(policy.publish_ahead),
            human(policy.retention)
        ),
        "Drawn by examples/key_timeline.rs, which steps the real planner (latchkey::keys::lifecycle::plan).".to_string(),
    ];
    for (i, line) in subtitle.iter().enumerate() {
        svg.text(40.0, 68.0 + 20.0 * i as f64, 14, "start", r##"fill="#57606A""##, line);
    }
    let legend = [
        (NEXT, "next: in the JWKS, not signing yet"),
        (ACTIVE, "active: signs new tokens"),
        (RETIRED, "retired: in the JWKS so its tokens verify"),
    ];
    let mut lx = 40.0;
    for (fill, words) in legend {
        svg.rect(lx, 108.0, 26.0, 16.0, fill, "");
        svg.text(lx + 34.0, 121.0, 14, "start", r##"fill="#1F2328""##, words);
        lx += 34.0 + 7.2 * words.chars().count() as f64 + 28.0;
    }
    svg.rect(lx + 11.0, 103.0, 3.0, 26.0, INK, "");
    svg.text(lx + 24.0, 121.0, 14, "start", r##"fill="#1F2328""##, "removed: leaves the JWKS");

    // Overview: every key of the simulation.
    let overview = Axis { x0: left, x1: right, t0: 0, t1: SIMULATED };
    let (lane, bar) = (40.0, 22.0);
    let top = 176.0;
    svg.text(40.0, top - 14.0, 16, "start", r##"fill="#1F2328" font-weight="bold""##, "100 days, stepped hourly");
    let all: Vec<&Life> = lives.iter().collect();
    let bottom = top + lane * all.len() as f64;
    grid(&mut svg, &overview, top, bottom, 10 * DAY, &|t| format!("day {}", t / DAY));
    lanes(&mut svg, &overview, &all, top, lane, bar, true);
    // The rotation interval, from one activation to the next (as simulated).
    let activations: Vec<i64> = lives.iter().filter_map(|l| l.activated).collect();
    for pair in activations.windows(2) {
        let (a, b) = (overview.x(pair[0]), overview.x(pair[1]));
        svg.span(a, b, bottom + 58.0, &format!("key_rotation_interval {}", human(policy.rotation_interval)), 14);
    }

    // The first rotation, enlarged.
    let first = lives.get(1).ok_or("the simulation made no second key")?;
    let (published, activated) = (first.published, first.activated.ok_or("the second key never signed")?);
    let old = lives.first().ok_or("no first key")?;
    let removed = old.removed.ok_or("the first key was never removed")?;
    let zoom = Axis { x0: left, x1: right, t0: published - 12 * HOUR, t1: removed + 12 * HOUR };
    // Show where the enlargement comes from.
    let (za, zb) = (overview.x(zoom.t0), overview.x(zoom.t1));
    svg.rect(
        za,
        top - 4.0,
        zb - za,
        lane * 2.0 + 8.0,
        "none",
        r##"stroke="#CF222E" stroke-width="1.5" stroke-dasharray="4 3""##,
    );
    svg.text(zb + 6.0, top + lane * 2.0 + 2.0, 13, "start", r##"fill="#CF222E""##, "enlarged below");

    let ztop = bottom + 172.0;
    svg.text(
        40.0,
        ztop - 68.0,
        16,
        "start",
        r##"fill="#1F2328" font-weight="bold""##,
        &format!("The first rotation, enlarged ({} to {})", when(zoom.t0), when(zoom.t1)),
    );
    let pair = [old, first];
    let zlane = 64.0;
    let zbottom = ztop + zlane * 2.0;
    grid(&mut svg, &zoom, ztop, zbottom, 6 * HOUR, &|t| {
        if t % DAY == 0 {
            format!("day {}", t / DAY)
        } else {
            format!("{:02}:00", t % DAY / HOUR)
        }
    });
    // The moments, as dashed verticals labelled at the top.
    let events = [
        (published, format!("{} published as next", first.label)),
        (activated, format!("{} signs, {} retires", first.label, old.label)),
        (removed, format!("{} leaves the JWKS", old.label)),
    ];
    for (t, words) in &events {
        let x = zoom.x(*t);
        svg.line(x, ztop - 26.0, x, zbottom, INK, r##"stroke-width="1.2" stroke-dasharray="5 4""##);
        svg.text(x, ztop - 34.0, 14, "middle", r##"fill="#1F2328""##, words);
    }
    lanes(&mut svg, &zoom, &pair, ztop, zlane, 30.0, true);
    // Publish-ahead over the new key's next bar, retention over the old key's retired bar.
    let y_ahead = ztop + zlane + 6.0;
    svg.span(
        zoom.x(published),
        zoom.x(activated),
        y_ahead,
        &format!("key_publish_ahead {}", human(policy.publish_ahead)),
        14,
    );
    let retired = old.retired.ok_or("the first key never retired")?;
    svg.span(zoom.x(retired), zoom.x(removed), ztop + 6.0, &format!("key_retention {}", human(policy.retention)), 14);

    // What the numbers must cover, and the simulation's granularity.
    let reload = settings.key_reload_interval.as_secs();
    let longest = settings.access_token_ttl.as_secs().max(settings.id_token_ttl.as_secs());
    let notes = [
        format!(
            "key_publish_ahead ≥ jwks_max_age + key_reload_interval ({} + {}): every cache that honours max-age holds the key before it signs.",
            human(settings.jwks_max_age.as_secs()),
            human(reload)
        ),
        format!(
            "key_retention ≥ longest token lifetime + key_reload_interval + {}s leeway ({} + {} + {}s): no key leaves while a token it signed is alive.",
            CLOCK_SKEW_LEEWAY_SECS,
            human(longest),
            human(reload),
            CLOCK_SKEW_LEEWAY_SECS
        ),
        format!(
            "A successor is published key_publish_ahead before the active key has signed for key_rotation_interval ({} > {}).",
            human(policy.rotation_interval),
            human(policy.publish_ahead)
        ),
        "The first key signs at once: it is made at the first start, before anyone can have cached a JWKS.".to_string(),
        format!(
            "Simulated with {} steps, so each change here lands up to {} after it is due; replicas step every key_reload_interval ({}).",
            if STEP == HOUR { "hourly".to_string() } else { human(STEP) },
            human(STEP),
            human(reload)
        ),
    ];
    let mut ny = zbottom + 62.0;
    for note in &notes {
        svg.text(40.0, ny, 13, "start", r##"fill="#57606A""##, &format!("• {note}"));
        ny += 21.0;
    }
    let height = ny + 10.0;

    let mut out = String::new();
    let _ = writeln!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height:.0}" viewBox="0 0 {width} {height:.0}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" role="img" aria-labelledby="title">"##
    );
    let _ = writeln!(
        out,
        "<title id=\"title\">Signing-key lifecycle: each key is published as next {} before it signs, signs for {}, then stays published as retired for {}</title>",
        human(policy.publish_ahead),
        human(policy.rotation_interval),
        human(policy.retention)
    );
    out.push_str(
        r##"<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#1F2328"/></marker></defs>
"##,
    );
    let _ = writeln!(out, r##"<rect width="100%" height="100%" fill="#FFFFFF"/>"##);
    out.push_str(&svg.0);
    out.push_str("</svg>\n");
    Ok(out)
}

fn main() -> Result<(), Error> {
    let path = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "docs/key-timeline.svg".into()));
    let settings = Settings::default();
    let lives = simulate(&settings.key_lifecycle())?;
    for life in &lives {
        let show = |t: Option<i64>| t.map(when).unwrap_or_else(|| "-".into());
        println!(
            "{:<6} next {:<14} active {:<14} retired {:<14} removed {}",
            life.label,
            when(life.published),
            show(life.activated),
            show(life.retired),
            show(life.removed)
        );
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&path, draw(&lives, &settings)?)?;
    println!("wrote {}", path.display());
    Ok(())
}
