//! The chart the README shows: throughput per scenario and server (log
//! scale, median with min–max whiskers) and, below, p99 latency at the
//! common fixed rate. SVG, so no font or image library is needed; the header
//! carries the date, the machine and the versions.

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::report::{Case, Results};
use super::scenarios::Scenario;
use super::servers::SERVERS;
use super::stats::Spread;

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 980;

/// One colour per server, demo-app's variants in shades of one hue.
fn colour(server: &str) -> RGBColor {
    match server {
        "demo-app" => RGBColor(214, 96, 0),
        "demo-app-otel" => RGBColor(240, 150, 60),
        "demo-app-otel-http" => RGBColor(225, 120, 40),
        "demo-app-otel-down" => RGBColor(250, 200, 130),
        "podinfo" => RGBColor(40, 110, 190),
        "python" => RGBColor(40, 150, 70),
        "python-otel" => RGBColor(140, 200, 140),
        "hyper" => RGBColor(90, 90, 90),
        _ => RGBColor(160, 60, 160),
    }
}

pub fn write(results: &Results, path: &Path) -> Result<()> {
    draw(results, path).map_err(|e| anyhow!("drawing {}: {e}", path.display()))
}

type Panel<'a> = (&'a str, fn(&Case) -> Option<Spread>);

fn draw(results: &Results, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let (header, body) = root.split_vertically(110);
    let s = &results.settings;
    let lines = [
        (format!("demo-app benchmark ({} run), {}", s.mode, results.date), 22),
        (format!("machine: {}", results.machine.describe()), 14),
        (
            format!(
                "server pinned to core {}, load on core {}; {} run(s) x {:.0} s per case; {} connections; Rust servers: {} profile",
                s.server_core, s.load_core, s.runs, s.duration_s, s.load.connections, s.profile
            ),
            14,
        ),
        (versions_line(results), 12),
    ];
    let mut y = 10;
    for (text, size) in lines {
        header.draw(&Text::new(text, (20, y), ("sans-serif", size).into_font()))?;
        y += size + 10;
    }
    let (top, bottom) = body.split_vertically((HEIGHT - 110) / 2);
    let rate_title = format!(
        "p99 latency at a fixed rate, ms ({} req/s; orders and checkout {} req/s; open loop; log scale)",
        s.load.rate, s.load.write_rate
    );
    let panels: [(Panel, &DrawingArea<SVGBackend, plotters::coord::Shift>); 2] = [
        (("throughput, requests/s (median, whiskers min-max; log scale)", |c| c.throughput_rps), &top),
        ((rate_title.as_str(), |c| c.fixed_rate.as_ref().and_then(|f| f.p99_ms)), &bottom),
    ];
    for (index, ((title, value), area)) in panels.into_iter().enumerate() {
        panel(results, area, title, value, index == 0)?;
    }
    root.present()?;
    Ok(())
}

fn versions_line(results: &Results) -> String {
    let wanted = ["rustc", "podinfo", "python", "python fastapi", "python uvicorn", "wrk", "oha", "otelcol"];
    let shown = results.versions.iter().filter(|(k, _)| wanted.contains(&k.as_str()));
    let shown = shown.map(|(k, v)| (k.clone(), v.clone())).collect();
    format!("versions: {}", super::machine::labelled(&shown).join("; "))
}

fn panel(
    results: &Results,
    area: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    title: &str,
    value: fn(&Case) -> Option<Spread>,
    legend: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let scenarios: Vec<Scenario> =
        Scenario::ALL.into_iter().filter(|s| results.cases.iter().any(|c| c.scenario == *s)).collect();
    let servers: Vec<&str> =
        SERVERS.iter().map(|s| s.id).filter(|id| results.cases.iter().any(|c| c.server == *id)).collect();
    let values: Vec<Spread> = results.cases.iter().filter_map(value).collect();
    if values.is_empty() || scenarios.is_empty() {
        area.draw(&Text::new(format!("{title}: not measured in this run"), (80, 40), ("sans-serif", 18).into_font()))?;
        return Ok(());
    }
    let low = values.iter().map(|v| v.min).fold(f64::INFINITY, f64::min).max(1e-3);
    let high = values.iter().map(|v| v.max).fold(0.0, f64::max);
    let (y_min, y_max) = (10f64.powf(low.log10().floor()), 10f64.powf(high.log10().ceil() + 0.3));
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..scenarios.len() as f64, (y_min..y_max).log_scale())?;
    chart.configure_mesh().disable_x_mesh().x_labels(0).y_label_formatter(&|v| format!("{v}")).draw()?;

    let slot = 0.84 / servers.len() as f64;
    for (j, server) in servers.iter().enumerate() {
        let colour = colour(server);
        let mut bars = Vec::new();
        let mut whiskers = Vec::new();
        for (i, scenario) in scenarios.iter().enumerate() {
            let Some(spread) =
                results.cases.iter().find(|c| c.server == *server && c.scenario == *scenario).and_then(value)
            else {
                continue;
            };
            let left = i as f64 + 0.08 + j as f64 * slot;
            bars.push(Rectangle::new([(left, y_min), (left + slot * 0.9, spread.median)], colour.filled()));
            let centre = left + slot * 0.45;
            whiskers.push(PathElement::new(vec![(centre, spread.min), (centre, spread.max)], BLACK.stroke_width(1)));
        }
        let title = SERVERS.iter().find(|s| s.id == *server).map_or(*server, |s| s.title());
        chart
            .draw_series(bars)?
            .label(title)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], colour.filled()));
        chart.draw_series(whiskers)?;
    }
    if legend {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .draw()?;
    }
    // Scenario names under their group of bars.
    let style = ("sans-serif", 14).into_font().into_text_style(area).pos(Pos::new(HPos::Center, VPos::Top));
    for (i, scenario) in scenarios.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(i as f64 + 0.5, y_min));
        area.draw(&Text::new(
            scenario.title(),
            (x - area.get_base_pixel().0, y - area.get_base_pixel().1 + 8),
            &style,
        ))?;
    }
    Ok(())
}
