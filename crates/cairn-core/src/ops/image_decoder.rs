//! ImageDecoder (opset 20): encoded image bytes (a 1-D uint8 tensor) to a uint8 HWC image
//! in RGB, BGR or Grayscale. Native builds only (cargo feature `image-decoder`): the codecs
//! would otherwise grow every wasm engine, and in a browser the page decodes images itself.
//!
//! The output shape is the image's size, known only from the bytes, so the op is
//! value-shaped like NonZero: computed in `infer` when the bytes are known (constants, the
//! eager interpreter).

use super::dynamic::{Compute, ValueShaped};
use crate::{Error, Registry, Result, Tensor, TensorData};
use image::{DynamicImage, ImageFormat, ImageReader, Limits};
use std::io::Cursor;

const NAME: &str = "ImageDecoder";

/// Decoded images above this many pixels are refused before the decoder allocates them
/// (a few hundred bytes of PNG can declare a 100k x 100k image).
const MAX_PIXELS: u64 = 1 << 28;

pub fn register(r: &mut Registry) {
    r.register(NAME, |ctx| {
        let format = ctx.string("pixel_format", "RGB")?;
        let pixel_format = match format.as_str() {
            "RGB" => PixelFormat::Rgb,
            "BGR" => PixelFormat::Bgr,
            "Grayscale" => PixelFormat::Grayscale,
            other => {
                return Err(Error::InvalidAttr {
                    attr: "pixel_format".into(),
                    detail: format!("'{other}' is not one of RGB, BGR, Grayscale"),
                })
            }
        };
        Ok(Box::new(ValueShaped(ImageDecoder { pixel_format })))
    });
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PixelFormat {
    Rgb,
    Bgr,
    Grayscale,
}

#[derive(Debug)]
struct ImageDecoder {
    pixel_format: PixelFormat,
}

impl Compute for ImageDecoder {
    const NAME: &'static str = NAME;
    fn compute(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let encoded = inputs.first().copied().flatten().ok_or_else(|| Error::shape(NAME, "input 0 (encoded_stream) is required"))?;
        let bytes = match (encoded.data(), encoded.rank()) {
            (TensorData::U8(b), 1) => b,
            _ => {
                return Err(Error::shape(
                    NAME,
                    format!("encoded_stream must be a 1-D uint8 tensor, got {:?} of shape {:?}", encoded.dtype(), encoded.shape()),
                ))
            }
        };
        Ok(vec![decode(bytes, self.pixel_format)?])
    }
}

/// The formats the `image-decoder` feature compiles in.
const FORMATS: [ImageFormat; 6] =
    [ImageFormat::Bmp, ImageFormat::Jpeg, ImageFormat::Png, ImageFormat::Pnm, ImageFormat::Tiff, ImageFormat::WebP];

fn decode(bytes: &[u8], pixel_format: PixelFormat) -> Result<Tensor> {
    if is_jpeg2000(bytes) {
        // The `image` crate has no JPEG 2000 codec; why Cairn does not add one: ADR 0027.
        return Err(Error::shape(
            NAME,
            "the bytes are a JPEG 2000 image, which Cairn does not decode (it decodes BMP, JPEG, PNG, PNM, TIFF and WebP); convert the image to PNG first",
        ));
    }
    let format = image::guess_format(bytes).ok().filter(|f| FORMATS.contains(f)).ok_or_else(|| {
        Error::shape(
            NAME,
            format!(
                "the {} bytes are not a BMP, JPEG, PNG, PNM, TIFF or WebP image (first bytes {:02x?})",
                bytes.len(),
                &bytes[..bytes.len().min(8)]
            ),
        )
    })?;
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_PIXELS * 8);
    reader.limits(limits);
    let image = reader.decode().map_err(|e| Error::shape(NAME, format!("cannot decode the {format:?} image: {e}")))?;
    let (w, h) = (image.width() as usize, image.height() as usize);
    if (w as u64) * (h as u64) > MAX_PIXELS {
        return Err(Error::TooLarge(format!("{NAME}: a {w}x{h} image is above Cairn's limit of {MAX_PIXELS} pixels")));
    }
    let (channels, data) = match pixel_format {
        PixelFormat::Rgb => (3, image.into_rgb8().into_raw()),
        PixelFormat::Bgr => {
            let mut rgb = image.into_rgb8().into_raw();
            rgb.chunks_exact_mut(3).for_each(|p| p.swap(0, 2));
            (3, rgb)
        }
        PixelFormat::Grayscale => (1, grayscale(image)),
    };
    Tensor::new(vec![h, w, channels], TensorData::U8(data))
}

/// Luma as the ONNX reference computes it (Pillow's `convert("L")`: ITU-R 601-2 weights in
/// 16-bit fixed point, rounded). The `image` crate's own luma uses Rec. 709 weights, which
/// gives different pixels; a grayscale source is kept as it is.
fn grayscale(image: DynamicImage) -> Vec<u8> {
    if let DynamicImage::ImageLuma8(l) = image {
        return l.into_raw();
    }
    if matches!(image, DynamicImage::ImageLumaA8(_) | DynamicImage::ImageLuma16(_) | DynamicImage::ImageLumaA16(_)) {
        return image.into_luma8().into_raw();
    }
    let rgb = image.into_rgb8();
    rgb.as_raw().chunks_exact(3).map(|p| ((p[0] as u32 * 19595 + p[1] as u32 * 38470 + p[2] as u32 * 7471 + 0x8000) >> 16) as u8).collect()
}

/// JPEG 2000: a JP2 file (signature box) or a raw codestream (SOC then SIZ marker).
fn is_jpeg2000(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x00\x00\x00\x0cjP  \r\n\x87\n") || bytes.starts_with(&[0xff, 0x4f, 0xff, 0x51])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DType;
    use image::{ImageBuffer, Rgb};

    fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    fn u8s(t: &Tensor) -> &[u8] {
        match t.data() {
            TensorData::U8(v) => v,
            _ => panic!("not u8"),
        }
    }

    /// A 3x2 image with distinct pixels, so a transposed or channel-swapped result shows.
    fn sample() -> DynamicImage {
        DynamicImage::ImageRgb8(ImageBuffer::from_fn(3, 2, |x, y| Rgb([(x * 80) as u8, (y * 200) as u8, 30 + x as u8])))
    }

    #[test]
    fn png_decodes_to_hwc_rgb_and_bgr() {
        let png = encode(&sample(), ImageFormat::Png);
        let rgb = decode(&png, PixelFormat::Rgb).unwrap();
        assert_eq!(rgb.shape(), &[2, 3, 3]);
        // Row 1, column 2: (160, 200, 32).
        assert_eq!(&u8s(&rgb)[(3 + 2) * 3..(3 + 2) * 3 + 3], &[160, 200, 32]);
        let bgr = decode(&png, PixelFormat::Bgr).unwrap();
        assert_eq!(&u8s(&bgr)[(3 + 2) * 3..(3 + 2) * 3 + 3], &[32, 200, 160]);
    }

    #[test]
    fn grayscale_uses_the_601_weights_of_the_reference() {
        let img = DynamicImage::ImageRgb8(ImageBuffer::from_fn(2, 1, |x, _| if x == 0 { Rgb([255, 0, 0]) } else { Rgb([10, 200, 90]) }));
        let gray = decode(&encode(&img, ImageFormat::Bmp), PixelFormat::Grayscale).unwrap();
        assert_eq!(gray.shape(), &[1, 2, 1]);
        // 255 * 0.299 = 76.2 -> 76; 10*.299 + 200*.587 + 90*.114 = 130.7 -> 131 (Rec. 709 would give 150).
        assert_eq!(u8s(&gray), &[76, 131]);
    }

    #[test]
    fn bad_bytes_are_errors_not_panics() {
        for bytes in [&b""[..], b"hello", b"\x89PNG\r\n\x1a\n\x00\x00", b"BM\x00\x01", b"GIF89a\x01\x00"] {
            let e = decode(bytes, PixelFormat::Rgb).unwrap_err().to_string();
            assert!(e.contains("ImageDecoder"), "{e}");
        }
        let mut png = encode(&sample(), ImageFormat::Png);
        png.truncate(png.len() / 2);
        assert!(decode(&png, PixelFormat::Rgb).unwrap_err().to_string().contains("cannot decode the Png image"));
    }

    #[test]
    fn jpeg2000_is_named_in_the_error() {
        let e = decode(b"\x00\x00\x00\x0cjP  \r\n\x87\n\x00\x00", PixelFormat::Rgb).unwrap_err().to_string();
        assert!(e.contains("JPEG 2000"), "{e}");
    }

    #[test]
    fn input_must_be_1d_uint8_and_pixel_format_known() {
        let op = ImageDecoder { pixel_format: PixelFormat::Rgb };
        let wrong = Tensor::from_f32(vec![2], vec![1.0, 2.0]).unwrap();
        assert!(op.compute(&[Some(&wrong)]).unwrap_err().to_string().contains("1-D uint8"));
        assert!(op.compute(&[None]).is_err());
        let mut r = Registry::default();
        register(&mut r);
        let attrs = [("pixel_format".to_string(), crate::Attr::Str("CMYK".into()))].into_iter().collect();
        let e = r.build("n", "", NAME, 20, &attrs, 1, 1).unwrap_err().to_string();
        assert!(e.contains("CMYK"), "{e}");
    }

    #[test]
    fn a_huge_declared_size_is_refused() {
        // A BMP header declaring 1,000,000 x 1,000,000 pixels with no pixel data.
        let mut bmp = b"BM".to_vec();
        bmp.extend_from_slice(&[0; 12]);
        bmp[10] = 54;
        bmp.extend_from_slice(&40u32.to_le_bytes());
        bmp.extend_from_slice(&1_000_000i32.to_le_bytes());
        bmp.extend_from_slice(&1_000_000i32.to_le_bytes());
        bmp.extend_from_slice(&1u16.to_le_bytes());
        bmp.extend_from_slice(&24u16.to_le_bytes());
        bmp.extend_from_slice(&[0; 24]);
        assert!(decode(&bmp, PixelFormat::Rgb).is_err());
    }

    #[test]
    fn dtype_of_output_is_uint8() {
        let t = decode(&encode(&sample(), ImageFormat::Png), PixelFormat::Grayscale).unwrap();
        assert_eq!(t.dtype(), DType::U8);
    }
}
