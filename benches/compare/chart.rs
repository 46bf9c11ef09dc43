//! The PNG chart next to compare.md: one panel per metric, a bar per VMM at its
//! median with a min–max whisker. Text is drawn only if a TrueType font could be
//! loaded (DejaVu Sans via plotters' pure-Rust ab_glyph renderer); without one
//! the bars stand alone and the numbers are in the Markdown.

use crate::report::Stat;
use plotters::prelude::*;
use std::path::Path;

/// Errors drawing the chart.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    /// The plotting backend failed.
    #[error("drawing {path}: {message}")]
    Draw {
        /// The PNG.
        path: String,
        /// plotters' message.
        message: String,
    },
}

/// One bar.
pub struct Bar {
    /// Label under the bar.
    pub label: String,
    /// Fill colour.
    pub color: RGBColor,
    /// Median, min, max.
    pub stat: Stat,
}

/// One panel: a title, a unit and its bars.
pub struct Panel {
    /// Title above the bars.
    pub title: String,
    /// Unit appended to values.
    pub unit: &'static str,
    /// The bars, left to right.
    pub bars: Vec<Bar>,
}

/// QEMU's colour.
pub const QEMU: RGBColor = RGBColor(230, 126, 34);
/// kvmsandbox (`Vm::start`) colour.
pub const OURS: RGBColor = RGBColor(41, 128, 185);
/// kvmsandbox (process start) colour.
pub const OURS_PROC: RGBColor = RGBColor(133, 193, 233);

fn fmt_value(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Draws `panels` side by side into the PNG at `path`.
pub fn draw(path: &Path, panels: &[Panel]) -> Result<(), ChartError> {
    let err = |e: &dyn std::fmt::Display| ChartError::Draw {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let text = kvmsandbox_benches::register_font();
    let width = 420 * panels.len().max(1) as u32;
    let root = BitMapBackend::new(path, (width, 460)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let areas = root.split_evenly((1, panels.len().max(1)));
    for (area, panel) in areas.iter().zip(panels) {
        draw_panel(area, panel, text).map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

fn draw_panel<'a>(
    area: &Area<'a>,
    panel: &Panel,
    text: bool,
) -> Result<(), DrawingAreaErrorKind<<BitMapBackend<'a> as DrawingBackend>::ErrorType>> {
    let (w, h) = area.dim_in_pixel();
    let (w, h) = (w as i32, h as i32);
    let (top, bottom, left, right) = (60, h - 50, 30, w - 30);
    let ymax = panel.bars.iter().map(|b| b.stat.max).fold(0.0f64, f64::max) * 1.15;
    let ymax = if ymax > 0.0 { ymax } else { 1.0 };
    let y = |v: f64| bottom - ((v / ymax) * f64::from(bottom - top)) as i32;
    let n = panel.bars.len().max(1) as i32;
    let slot = (right - left) / n;
    let bw = slot * 3 / 5;
    let axis = BLACK.stroke_width(1);
    area.draw(&PathElement::new(
        vec![(left, bottom), (right, bottom)],
        axis,
    ))?;
    area.draw(&PathElement::new(
        vec![(left, top - 10), (left, bottom)],
        axis,
    ))?;
    if text {
        let title = ("sans-serif", 18).into_font().color(&BLACK);
        area.draw(&Text::new(
            format!("{} ({})", panel.title, panel.unit),
            (left, 15),
            title,
        ))?;
    }
    for (i, b) in panel.bars.iter().enumerate() {
        let x0 = left + slot * i as i32 + (slot - bw) / 2;
        let x1 = x0 + bw;
        let xc = (x0 + x1) / 2;
        area.draw(&Rectangle::new(
            [(x0, y(b.stat.median)), (x1, bottom)],
            b.color.filled(),
        ))?;
        let whisker = BLACK.stroke_width(2);
        area.draw(&PathElement::new(
            vec![(xc, y(b.stat.min)), (xc, y(b.stat.max))],
            whisker,
        ))?;
        area.draw(&PathElement::new(
            vec![(xc - 8, y(b.stat.max)), (xc + 8, y(b.stat.max))],
            whisker,
        ))?;
        area.draw(&PathElement::new(
            vec![(xc - 8, y(b.stat.min)), (xc + 8, y(b.stat.min))],
            whisker,
        ))?;
        if text {
            let f = ("sans-serif", 15).into_font().color(&BLACK);
            let value = format!("{} {}", fmt_value(b.stat.median), panel.unit);
            area.draw(&Text::new(value, (x0, y(b.stat.max) - 20), f.clone()))?;
            area.draw(&Text::new(b.label.clone(), (x0, bottom + 8), f))?;
        }
    }
    Ok(())
}
