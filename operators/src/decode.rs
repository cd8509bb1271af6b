//! Decoding JPEG and PNG frames into RGB pixels, with limits.
//!
//! The header is read first and the frame refused if its dimensions exceed
//! the limit, so a decompression bomb (a small file claiming a huge image)
//! is rejected before its pixels are allocated. The format is taken from the
//! bytes, not from the file name.

use std::io::Cursor;
use std::sync::Arc;

use image::codecs::jpeg::JpegDecoder;
use image::codecs::png::PngDecoder;
use image::codecs::webp::WebPDecoder;
use image::{DynamicImage, ImageDecoder, ImageFormat, Limits};

use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;

use engine::model::{Frame, Pixels};
use engine::registry::Decoder;

/// Limits on what a frame may make the decoder allocate.
#[derive(Clone, Copy, Debug)]
pub struct DecodeLimits {
    /// Largest width × height accepted (default 40 megapixels).
    pub max_pixels: u64,
    /// Largest width or height accepted (default 16384).
    pub max_side: u32,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits { max_pixels: 40_000_000, max_side: 16_384 }
    }
}

/// The decoder the engine uses for every frame.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    limits: DecodeLimits,
}

impl FrameDecoder {
    pub fn new(limits: DecodeLimits) -> FrameDecoder {
        FrameDecoder { limits }
    }

    /// Refuses dimensions over the limits, or none.
    fn check(&self, width: u32, height: u32) -> Result<(), String> {
        let pixels = u64::from(width) * u64::from(height);
        if width > self.limits.max_side || height > self.limits.max_side || pixels > self.limits.max_pixels {
            return Err(format!(
                "image is {width}x{height}, over the decode limit ({} pixels, {} per side)",
                self.limits.max_pixels, self.limits.max_side
            ));
        }
        if pixels == 0 {
            return Err("image has no pixels".to_owned());
        }
        Ok(())
    }

    /// A JPEG through zune-jpeg itself, the decoder the `image` crate wraps:
    /// the same pixels in half the time (`image` adds a second pass over
    /// the headers, a zeroed buffer and a copy). `None` where zune-jpeg
    /// does not give RGB, for the `image` path to take.
    fn decode_jpeg(&self, bytes: &[u8]) -> Result<Option<Pixels>, String> {
        let side = self.limits.max_side as usize;
        let options =
            DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::RGB).set_max_width(side).set_max_height(side);
        let mut decoder = zune_jpeg::JpegDecoder::new_with_options(Cursor::new(bytes), options);
        decoder.decode_headers().map_err(|e| format!("corrupt JPEG: {e}"))?;
        let Some((width, height)) = decoder.dimensions() else { return Ok(None) };
        let (width, height) = (u32::try_from(width).unwrap_or(u32::MAX), u32::try_from(height).unwrap_or(u32::MAX));
        self.check(width, height)?;
        if decoder.output_colorspace() != Some(ColorSpace::RGB) {
            return Ok(None);
        }
        let size = 3 * width as usize * height as usize;
        if decoder.output_buffer_size() != Some(size) {
            return Ok(None);
        }
        // straight into the frame's shared buffer: a copy of a frame costs
        // as much as a tenth of its decoding
        let mut rgb: Arc<[u8]> = std::iter::repeat_n(0, size).collect();
        let buffer = Arc::get_mut(&mut rgb).ok_or("a new buffer is not shared")?;
        decoder.decode_into(buffer).map_err(|e| format!("corrupt JPEG: {e}"))?;
        Ok(Some(Pixels { width, height, rgb }))
    }

    fn decode_with(&self, decoder: impl ImageDecoder) -> Result<Pixels, String> {
        let (width, height) = decoder.dimensions();
        self.check(width, height)?;
        let image = DynamicImage::from_decoder(decoder).map_err(|e| format!("corrupt image: {e}"))?;
        Ok(Pixels { width, height, rgb: Arc::from(rgb8(image)) })
    }
}

/// An image's pixels as 8-bit RGB. The 8-bit layouts are spread or cut
/// here (grey repeated, alpha dropped), as `image` would, without its
/// per-pixel colour-space path, which took longer than decoding.
fn rgb8(image: DynamicImage) -> Vec<u8> {
    let spread = |values: &[u8], step: usize| -> Vec<u8> {
        let mut rgb = vec![0; values.len() / step * 3];
        for (out, p) in rgb.chunks_exact_mut(3).zip(values.chunks_exact(step)) {
            out.copy_from_slice(&if step <= 2 { [p[0]; 3] } else { [p[0], p[1], p[2]] });
        }
        rgb
    };
    match image {
        DynamicImage::ImageRgb8(rgb) => rgb.into_raw(),
        DynamicImage::ImageLuma8(grey) => spread(grey.as_raw(), 1),
        DynamicImage::ImageLumaA8(grey) => spread(grey.as_raw(), 2),
        DynamicImage::ImageRgba8(rgba) => spread(rgba.as_raw(), 4),
        other => other.into_rgb8().into_raw(),
    }
}

impl Decoder for FrameDecoder {
    fn decode(&self, frame: &Frame) -> Result<Pixels, String> {
        let bytes = &frame.bytes[..];
        if bytes.is_empty() {
            return Err("file is empty".to_owned());
        }
        let mut limits = Limits::default();
        limits.max_image_width = Some(self.limits.max_side);
        limits.max_image_height = Some(self.limits.max_side);
        limits.max_alloc = Some(self.limits.max_pixels.saturating_mul(4));
        match image::guess_format(bytes) {
            Ok(ImageFormat::Jpeg) => {
                // The JPEG decoder fills a cut-off image with grey rather than
                // failing, so a partial upload would pass as a frame.
                if !has_jpeg_end(bytes) {
                    return Err("corrupt JPEG: truncated (no end-of-image marker)".to_owned());
                }
                if let Some(pixels) = self.decode_jpeg(bytes)? {
                    return Ok(pixels);
                }
                let mut decoder = JpegDecoder::new(Cursor::new(bytes)).map_err(|e| format!("corrupt JPEG: {e}"))?;
                decoder.set_limits(limits).map_err(|e| format!("JPEG over the decode limits: {e}"))?;
                self.decode_with(decoder)
            }
            Ok(ImageFormat::Png) => {
                let mut decoder = PngDecoder::new(Cursor::new(bytes)).map_err(|e| format!("corrupt PNG: {e}"))?;
                decoder.set_limits(limits).map_err(|e| format!("PNG over the decode limits: {e}"))?;
                self.decode_with(decoder)
            }
            Ok(ImageFormat::WebP) => {
                let mut decoder = WebPDecoder::new(Cursor::new(bytes)).map_err(|e| format!("corrupt WebP: {e}"))?;
                decoder.set_limits(limits).map_err(|e| format!("WebP over the decode limits: {e}"))?;
                self.decode_with(decoder)
            }
            _ => {
                let head: Vec<String> = bytes.iter().take(4).map(|b| format!("{b:02x}")).collect();
                Err(format!("not a JPEG, PNG or WebP image (starts with {})", head.join(" ")))
            }
        }
    }
}

/// Whether a JPEG's end-of-image marker is near its end: some cameras pad
/// or append a little after it, so the last 4 KiB are searched.
fn has_jpeg_end(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(4096)..];
    tail.windows(2).any(|w| w == [0xff, 0xd9])
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::model::MediaType;

    fn frame(bytes: Vec<u8>) -> Frame {
        Frame {
            frame_id: "f".into(),
            tenant: "t".into(),
            source_id: "cam".into(),
            seq: 0,
            event_time: 0,
            ingest_time: 0,
            media_type: MediaType::Png,
            bytes: bytes.into(),
            late: None,
            refused: None,
        }
    }

    fn png(width: u32, height: u32) -> Vec<u8> {
        let image = image::RgbImage::from_pixel(width, height, image::Rgb([10, 20, 30]));
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    }

    /// PNGs in each 8-bit layout decode to the pixels `image`'s own
    /// conversion to RGB gives.
    #[test]
    fn pngs_of_every_8_bit_layout_decode_as_the_image_crate_converts_them() {
        let rgba =
            image::RgbaImage::from_fn(13, 7, |x, y| image::Rgba([(x * 19) as u8, (y * 37) as u8, 200, (x * y) as u8]));
        let rgba = image::DynamicImage::ImageRgba8(rgba);
        for image in [rgba.clone(), rgba.to_rgb8().into(), rgba.to_luma8().into(), rgba.to_luma_alpha8().into()] {
            let mut png = Cursor::new(Vec::new());
            image.write_to(&mut png, ImageFormat::Png).unwrap();
            let ours = FrameDecoder::default().decode(&frame(png.into_inner())).unwrap();
            assert_eq!(&ours.rgb[..], &image.to_rgb8().as_raw()[..], "{:?}", image.color());
        }
    }

    /// zune-jpeg used directly gives the pixels the `image` crate gives,
    /// for colour and grey JPEGs.
    #[test]
    fn jpegs_decode_as_the_image_crate_decodes_them() {
        let colour =
            image::RgbImage::from_fn(37, 23, |x, y| image::Rgb([(x * 7) as u8, (y * 11) as u8, (x * y) as u8]));
        let grey = image::GrayImage::from_fn(19, 31, |x, y| image::Luma([(x * 13 + y * 5) as u8]));
        for image in [image::DynamicImage::ImageRgb8(colour), image::DynamicImage::ImageLuma8(grey)] {
            let mut jpeg = Cursor::new(Vec::new());
            image.write_to(&mut jpeg, ImageFormat::Jpeg).unwrap();
            let bytes = jpeg.into_inner();
            let ours = FrameDecoder::default().decode(&frame(bytes.clone())).unwrap();
            let theirs = image::load_from_memory(&bytes).unwrap().into_rgb8();
            assert_eq!((ours.width, ours.height), theirs.dimensions());
            assert_eq!(&ours.rgb[..], &theirs.as_raw()[..]);
        }
    }

    #[test]
    fn decodes_png_to_rgb() {
        let pixels = FrameDecoder::default().decode(&frame(png(3, 2))).unwrap();
        assert_eq!((pixels.width, pixels.height), (3, 2));
        assert_eq!(&pixels.rgb[..3], &[10, 20, 30]);
    }

    #[test]
    fn decodes_webp_to_rgb() {
        let image = image::RgbImage::from_pixel(5, 4, image::Rgb([200, 100, 50]));
        let mut webp = Cursor::new(Vec::new());
        image.write_to(&mut webp, ImageFormat::WebP).unwrap();
        let pixels = FrameDecoder::default().decode(&frame(webp.into_inner())).unwrap();
        assert_eq!((pixels.width, pixels.height), (5, 4));
        assert_eq!(&pixels.rgb[..3], &[200, 100, 50], "lossless");
    }

    #[test]
    fn empty_truncated_and_foreign_bytes_are_rejected_with_reasons() {
        let decoder = FrameDecoder::default();
        assert_eq!(decoder.decode(&frame(Vec::new())).unwrap_err(), "file is empty");
        let mut truncated = png(64, 64);
        truncated.truncate(truncated.len() / 2);
        assert!(decoder.decode(&frame(truncated)).unwrap_err().contains("corrupt"));
        assert!(decoder.decode(&frame(b"GIF89a....".to_vec())).unwrap_err().starts_with("not a JPEG, PNG or WebP"));
        let mut jpeg = Cursor::new(Vec::new());
        image::RgbImage::from_pixel(64, 64, image::Rgb([1, 2, 3])).write_to(&mut jpeg, ImageFormat::Jpeg).unwrap();
        let jpeg = jpeg.into_inner();
        assert!(decoder.decode(&frame(jpeg.clone())).is_ok());
        let cut = jpeg[..jpeg.len() - 40].to_vec();
        assert_eq!(decoder.decode(&frame(cut)).unwrap_err(), "corrupt JPEG: truncated (no end-of-image marker)");
    }

    #[test]
    fn decompression_bomb_is_refused_from_its_header() {
        // A PNG header claiming 100000 x 100000 pixels, with no pixel data.
        let mut bomb = png(1, 1);
        bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        let crc = crc32(&bomb[12..29]);
        bomb[29..33].copy_from_slice(&crc.to_be_bytes());
        let err = FrameDecoder::default().decode(&frame(bomb)).unwrap_err();
        assert!(err.contains("limit"), "{err}");
    }

    /// CRC-32 as PNG chunks use it, so the forged header is otherwise valid.
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for byte in bytes {
            crc ^= u32::from(*byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }
}
