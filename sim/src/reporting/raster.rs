//! The report's figures as PNG, rasterised from the very SVG written next to them, so a
//! submission made as a PDF or a word-processor document can carry them.
//!
//! Pure Rust (resvg) with DejaVu Sans embedded in the binary: no system tool and no system
//! font is read, so the PNG of a figure is the same on every machine. Drawn at twice the
//! SVG's size so text stays legible when the image is scaled down on a page.

use std::sync::Arc;

use anyhow::Context;
use resvg::{tiny_skia, usvg};

/// Pixels per SVG unit in the PNG.
pub const SCALE: f32 = 2.0;

/// The PNG bytes of `svg`, drawn at [`SCALE`] with the embedded font.
pub fn png(svg: &str) -> anyhow::Result<Vec<u8>> {
    let mut options = usvg::Options::default();
    options.fontdb = Arc::new(fonts());
    let tree = usvg::Tree::from_str(svg, &options).context("parsing the figure's SVG")?;
    let size = tree.size().to_int_size().scale_by(SCALE).context("sizing the PNG")?;
    let mut pixmap = tiny_skia::Pixmap::new(size.width(), size.height()).context("allocating the PNG")?;
    resvg::render(&tree, tiny_skia::Transform::from_scale(SCALE, SCALE), &mut pixmap.as_mut());
    pixmap.encode_png().context("encoding the PNG")
}

/// DejaVu Sans in regular and bold, answering for the generic `sans-serif` the figures ask for.
fn fonts() -> usvg::fontdb::Database {
    let mut db = usvg::fontdb::Database::new();
    db.load_font_data(dejavu::sans::regular().to_vec());
    db.load_font_data(dejavu::sans::bold().to_vec());
    db.set_sans_serif_family("DejaVu Sans");
    db
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts the pixels that are not white: text and lines drawn on a white ground.
    fn inked_pixels(svg: &str) -> usize {
        let png = png(svg).unwrap();
        let pixmap = tiny_skia::Pixmap::decode_png(&png).unwrap();
        pixmap.pixels().iter().filter(|p| (p.red(), p.green(), p.blue()) != (255, 255, 255)).count()
    }

    #[test]
    fn text_is_drawn_with_the_embedded_font_at_twice_the_size() {
        let blank = r#"<svg xmlns="http://www.w3.org/2000/svg" width="100" height="40" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/></svg>"#;
        let with_text = blank.replace("</svg>", r#"<text x="5" y="25" font-size="16">Part B</text></svg>"#);
        let pixmap = tiny_skia::Pixmap::decode_png(&png(blank).unwrap()).unwrap();
        assert_eq!((pixmap.width(), pixmap.height()), (200, 80));
        assert_eq!(inked_pixels(blank), 0);
        assert!(inked_pixels(&with_text) > 100, "no glyph was drawn: the font did not load");
    }
}
