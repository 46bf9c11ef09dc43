//! Criterion configuration shared by every benchmark here: HTML reports with
//! plots when a font is available (plotters' `ab_glyph` renderer, switched on by
//! this crate's comparison chart, needs a registered font for criterion's charts
//! too), plain reports otherwise instead of a panic.

use criterion::Criterion;

/// The criterion every benchmark group starts from.
pub fn criterion() -> Criterion {
    let c = Criterion::default();
    if kvmsandbox_benches::register_font() {
        c
    } else {
        eprintln!("no TrueType font found (install fonts-dejavu-core): criterion plots are off");
        c.without_plots()
    }
}
