//! The timeline of upcoming deletions as an inline SVG stacked bar chart: one bar per
//! bucket, one segment per artifact kind. Plain SVG, no script: each bar and segment
//! carries a `<title>` (the browser's tooltip), and the page repeats the numbers in a table.

use maud::{html, Markup};

use super::view::{hours_label, when};
use crate::domain::ArtifactKind;
use crate::engine::dashboard::DeletionTimeline;

/// One colour per [`ArtifactKind::ALL`], in that order.
pub const KIND_COLOURS: [&str; 8] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#b8860b", "#b07aa1", "#9c755f",
];

pub fn colour(index: usize) -> &'static str {
    KIND_COLOURS[index % KIND_COLOURS.len()]
}

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 290.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 22.0;
const BOTTOM: f64 = 58.0;

/// The smallest of 1, 2, 5 × 10ⁿ at least `n` (at least 1).
fn nice_ceiling(n: u64) -> u64 {
    let mut magnitude = 1u64;
    loop {
        for step in [1, 2, 5] {
            if step * magnitude >= n.max(1) {
                return step * magnitude;
            }
        }
        magnitude = magnitude.saturating_mul(10);
    }
}

fn px(v: f64) -> String {
    format!("{v:.1}")
}

/// The non-empty segments of a stacked bar: (kind index, count below it, count).
fn segments(counts: &[u64]) -> Vec<(usize, u64, u64)> {
    let mut below = 0;
    let mut out = Vec::new();
    for (k, count) in counts.iter().enumerate().filter(|(_, c)| **c > 0) {
        out.push((k, below, *count));
        below += count;
    }
    out
}

pub fn timeline_svg(timeline: &DeletionTimeline) -> Markup {
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let n = timeline.buckets.len().max(1) as f64;
    let slot = plot_w / n;
    let bar = slot * 0.7;
    let peak = timeline
        .buckets
        .iter()
        .map(|b| b.total())
        .max()
        .unwrap_or(0);
    let top = nice_ceiling(peak);
    let ticks = if top <= 5 { top } else { 5 };
    let y = |count: u64| TOP + plot_h - plot_h * count as f64 / top as f64;
    let bottom = TOP + plot_h;
    let now = timeline.now;
    html! {
        svg xmlns="http://www.w3.org/2000/svg" viewBox={"0 0 " (WIDTH) " " (HEIGHT)}
            width="100%" role="img" aria-labelledby="timeline-title" class="chart" {
            title id="timeline-title" {
                "Upcoming deletions by artifact kind, " (timeline.buckets.len()) " buckets from "
                (when(now)) " to " (when(timeline.end())) ": " (timeline.total()) " in all"
            }
            @for i in 0..=ticks {
                @let value = top / ticks.max(1) * i;
                line x1=(px(LEFT)) x2=(px(WIDTH - RIGHT)) y1=(px(y(value))) y2=(px(y(value)))
                    class="grid" {}
                text x=(px(LEFT - 6.0)) y=(px(y(value) + 4.0)) text-anchor="end" class="tick" { (value) }
            }
            @for (i, b) in timeline.buckets.iter().enumerate() {
                @let x = LEFT + slot * i as f64 + (slot - bar) / 2.0;
                g class="bar" {
                    title {
                        (when(b.start)) " – " (when(b.end)) ": " (b.total()) " deletion"
                        @if b.total() != 1 { "s" }
                    }
                    @for (k, below, count) in segments(&b.counts) {
                        rect x=(px(x)) y=(px(y(below + count))) width=(px(bar))
                            height=(px(y(below) - y(below + count))) fill=(colour(k))
                            data-kind=(ArtifactKind::ALL[k].as_str()) data-count=(count) {
                            title {
                                (count) " " (ArtifactKind::ALL[k].as_str()) " from "
                                (when(b.start)) " to " (when(b.end))
                            }
                        }
                    }
                    @if b.total() > 0 {
                        text x=(px(x + bar / 2.0)) y=(px(y(b.total()) - 4.0)) text-anchor="middle"
                            class="total" { (b.total()) }
                    }
                }
            }
            line x1=(px(LEFT)) x2=(px(WIDTH - RIGHT)) y1=(px(bottom)) y2=(px(bottom)) class="axis" {}
            @for (i, b) in timeline.buckets.iter().enumerate() {
                text x=(px(LEFT + slot * i as f64)) y=(px(bottom + 16.0)) text-anchor="middle" class="tick" {
                    (hours_label(now, b.start))
                }
            }
            text x=(px(WIDTH - RIGHT)) y=(px(bottom + 16.0)) text-anchor="end" class="tick" {
                (hours_label(now, timeline.end()))
            }
            text x=(px(LEFT + plot_w / 2.0)) y=(px(HEIGHT - 10.0)) text-anchor="middle" class="caption" {
                "hours from now (" (when(now)) ")"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scale_rounds_up_to_a_nice_number() {
        assert_eq!(nice_ceiling(0), 1);
        assert_eq!(nice_ceiling(1), 1);
        assert_eq!(nice_ceiling(3), 5);
        assert_eq!(nice_ceiling(7), 10);
        assert_eq!(nice_ceiling(11), 20);
        assert_eq!(nice_ceiling(480), 500);
    }
}
