"""Tests of cococxr.io: image/mask/DICOM reading, header sizes, PNG writing, scaling."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, MPEG2MPML, generate_uid

import cococxr
from cococxr.errors import ConfigError, ImageReadError
from cococxr.io import (
    image_size,
    is_dicom,
    read_dicom,
    read_dicom_tags,
    read_image,
    read_mask,
    to_float01,
    write_png,
)
from helpers import SHARED_DATA

DATA = SHARED_DATA
SAMPLE = Path(cococxr.__file__).parent / "sample"
WG04 = DATA / "dicom" / "pydicom_data_wg04"
SIIM = DATA / "dicom" / "torchxrayvision_tests" / "1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm"


def _shared(path: Path) -> Path:
    """Return ``path`` or skip the test when the shared data folder is absent."""
    if not path.exists():
        pytest.skip(f"shared data not available: {path}")
    return path


def _pil_bytes(image: Image.Image, fmt: str, **kwargs) -> bytes:
    """Encode a PIL image in memory."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def _gradient(height: int = 40, width: int = 56, dtype=np.uint8) -> np.ndarray:
    """A deterministic non-constant test image."""
    top = np.iinfo(dtype).max
    values = np.arange(height * width, dtype=np.float64).reshape(height, width)
    return (values * 7919 % (top + 1)).astype(dtype)


# ----------------------------------------------------------------- sample and real rasters


def test_sample_image_and_mask_read():
    image_path = sorted((SAMPLE / "images").glob("*.png"))[0]
    mask_path = sorted((SAMPLE / "masks").glob("*.png"))[0]
    image, mask = read_image(image_path), read_mask(mask_path)
    assert image.dtype == np.uint8 and image.ndim == 2
    assert image_size(image_path) == image.shape
    assert set(np.unique(mask)) <= {0, 255}
    assert image_size(mask_path) == mask.shape


def test_rgba_dsb_image_drops_alpha():
    path = next(iter(sorted(_shared(DATA / "dsb2018-rle").glob("stage1_train/*/images/*.png"))), None)
    if path is None:
        pytest.skip("no DSB image found")
    image = read_image(path)
    expected = np.array(Image.open(path).convert("RGB"))
    assert image.shape == expected.shape and image.dtype == np.uint8
    np.testing.assert_array_equal(image, expected)


def test_nih_png_matches_pillow():
    # dicom/README.md calls these 1024x1024; the files are 512x512 8-bit grayscale.
    path = _shared(DATA / "dicom" / "torchxrayvision_tests" / "00000001_000.png")
    image = read_image(path)
    np.testing.assert_array_equal(image, np.array(Image.open(path)))
    assert image.shape == image_size(path) == (512, 512)


# ----------------------------------------------------------------- formats and channel order


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("channels", [None, 3, 4])
def test_write_png_round_trip_exact(tmp_path, dtype, channels):
    array = _gradient(dtype=dtype)
    if channels:
        array = np.stack([np.roll(array, k, axis=1) for k in range(channels)], axis=2)
    write_png(tmp_path / "sub" / "x.png", array)
    back = read_image(tmp_path / "sub" / "x.png")
    assert back.dtype == dtype
    np.testing.assert_array_equal(back, array[:, :, :3] if channels else array)
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["x.png"]


def test_write_png_is_rgb_for_other_readers(tmp_path):
    red = np.zeros((4, 5, 3), np.uint8)
    red[..., 0] = 255
    write_png(tmp_path / "red.png", red)
    np.testing.assert_array_equal(np.array(Image.open(tmp_path / "red.png")), red)


def test_write_png_rejects_bad_arrays_and_keeps_target(tmp_path):
    target = tmp_path / "keep.png"
    write_png(target, np.ones((3, 3), np.uint8))
    before = target.read_bytes()
    for bad in (np.ones((3, 3), np.float32), np.ones((3, 3, 2), np.uint8), np.ones(3, np.uint8)):
        with pytest.raises(ConfigError):
            write_png(target, bad)
    assert target.read_bytes() == before


def test_jpeg_colour_is_rgb(tmp_path):
    array = np.zeros((32, 32, 3), np.uint8)
    array[:, :16, 0] = 250  # red left half
    array[:, 16:, 2] = 250  # blue right half
    (tmp_path / "c.jpg").write_bytes(_pil_bytes(Image.fromarray(array), "JPEG", quality=95))
    image = read_image(tmp_path / "c.jpg")
    assert image.shape == (32, 32, 3)
    assert image[16, 4, 0] > 200 and image[16, 4, 2] < 50
    assert image[16, 28, 2] > 200 and image[16, 28, 0] < 50


@pytest.mark.parametrize("fmt,suffix", [("TIFF", ".tif"), ("BMP", ".bmp"), ("PNG", ".png")])
def test_tiff_bmp_png_via_pil(tmp_path, fmt, suffix):
    array = _gradient()
    rgb = np.stack([array, 255 - array, array // 2], axis=2)
    for name, data in (("g", array), ("c", rgb)):
        path = tmp_path / f"{name}{suffix}"
        path.write_bytes(_pil_bytes(Image.fromarray(data), fmt))
        np.testing.assert_array_equal(read_image(path), data)
        assert image_size(path) == data.shape[:2]


def test_tiff_16bit_kept(tmp_path):
    array = _gradient(dtype=np.uint16)
    (tmp_path / "g16.tif").write_bytes(_pil_bytes(Image.fromarray(array), "TIFF"))
    back = read_image(tmp_path / "g16.tif")
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, array)


def test_format_detected_by_content_not_suffix(tmp_path):
    array = _gradient()
    (tmp_path / "really_png.jpg").write_bytes(_pil_bytes(Image.fromarray(array), "PNG"))
    np.testing.assert_array_equal(read_image(tmp_path / "really_png.jpg"), array)


def test_jpeg_with_trailing_bytes_is_accepted(tmp_path):
    data = _pil_bytes(Image.fromarray(_gradient()), "JPEG") + b"trailing vendor junk"
    (tmp_path / "t.jpg").write_bytes(data)
    assert read_image(tmp_path / "t.jpg").shape == (40, 56)


# ----------------------------------------------------------------- masks


def test_palette_mask_gives_indices(tmp_path):
    indices = (_gradient() % 4).astype(np.uint8)
    image = Image.fromarray(indices, "P")
    image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255])
    (tmp_path / "p.png").write_bytes(_pil_bytes(image, "PNG"))
    np.testing.assert_array_equal(read_mask(tmp_path / "p.png"), indices)
    colours = read_image(tmp_path / "p.png")
    assert colours.shape == (40, 56, 3)
    np.testing.assert_array_equal(colours[indices == 1], np.tile([255, 0, 0], ((indices == 1).sum(), 1)))


def test_rgba_mask_constant_alpha_becomes_rgb(tmp_path):
    rgb = np.zeros((10, 12, 3), np.uint8)
    rgb[2:5, 3:7] = (255, 0, 0)
    rgba = np.dstack([rgb, np.full((10, 12), 255, np.uint8)])
    write_png(tmp_path / "m.png", rgba)
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png"), rgb)


def test_rgba_mask_varying_alpha_is_an_error(tmp_path):
    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[2:5, 3:7, 3] = 255
    write_png(tmp_path / "alpha.png", rgba)
    with pytest.raises(ImageReadError, match="alpha.png.*alpha"):
        read_mask(tmp_path / "alpha.png")
    assert read_image(tmp_path / "alpha.png").shape == (10, 12, 3)


def test_16bit_mask_kept(tmp_path):
    labels = np.zeros((8, 9), np.uint16)
    labels[1:4, 2:5] = 300
    labels[5:7, 1:3] = 65535
    write_png(tmp_path / "l16.png", labels)
    back = read_mask(tmp_path / "l16.png")
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, labels)


# ----------------------------------------------------------------- errors


def _png_bytes() -> bytes:
    return _pil_bytes(Image.fromarray(_gradient(64, 64)), "PNG")


def _jpeg_bytes() -> bytes:
    return _pil_bytes(Image.fromarray(_gradient(64, 64)), "JPEG")


BAD_FILES = {
    "zero.png": (b"", "empty"),
    "half.png": (_png_bytes()[: len(_png_bytes()) // 2], "truncated"),
    "no_iend.png": (_png_bytes()[:-12], "truncated"),
    "half.jpg": (_jpeg_bytes()[: len(_jpeg_bytes()) // 2], "truncated"),
    "cut.jpg": (_jpeg_bytes()[:-40], "truncated"),
    "text.png": (b"this is not an image, just text\n", "not a supported image"),
    "anim.gif": (b"GIF89a" + b"\x00" * 64, "not a supported image"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
@pytest.mark.parametrize("reader", [read_image, read_mask])
def test_bad_files_raise_naming_file(tmp_path, name, reader):
    data, what = BAD_FILES[name]
    (tmp_path / name).write_bytes(data)
    with pytest.raises(ImageReadError, match=what) as info:
        reader(tmp_path / name)
    assert name in str(info.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ImageReadError, match="nope.png: file not found"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(ImageReadError, match="not a regular file"):
        read_mask(tmp_path)
    with pytest.raises(ImageReadError, match="nope.dcm: file not found"):
        read_dicom(tmp_path / "nope.dcm")
    with pytest.raises(ImageReadError, match="file not found"):
        image_size(tmp_path / "nope.png")


def test_image_size_reads_header_only(tmp_path):
    (tmp_path / "half.png").write_bytes(BAD_FILES["half.png"][0])
    assert image_size(tmp_path / "half.png") == (64, 64)
    (tmp_path / "text.png").write_bytes(b"hello")
    with pytest.raises(ImageReadError, match="text.png"):
        image_size(tmp_path / "text.png")


def test_read_image_rejects_bad_dicom_bits(tmp_path):
    with pytest.raises(ConfigError):
        read_image(tmp_path / "x.png", dicom_bits=12)


# ----------------------------------------------------------------- synthetic DICOM


def _dicom(path: Path, *, pixels: np.ndarray | None = None, transfer_syntax=ExplicitVRLittleEndian,
           photometric: str = "MONOCHROME2", preamble: bool = True, **tags) -> Path:
    """Write a small CR DICOM file with pydicom."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.PatientID, ds.Modality, ds.ViewPosition, ds.StudyDate = "P1", "CR", "PA", "20240102"
    ds.PixelSpacing = [0.139, 0.139]
    for key, value in tags.items():
        setattr(ds, key, value)
    if pixels is not None:
        ds.Rows, ds.Columns = pixels.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = pixels.astype(np.uint16).tobytes()
    if transfer_syntax != ExplicitVRLittleEndian:
        ds.PixelData = encapsulate([b"\x00" * 64])
    ds.save_as(path, enforce_file_format=preamble, implicit_vr=False, little_endian=True)
    return path


RAW = np.array([[0, 1000, 2000], [3000, 4000, 4095]], np.uint16)


def test_dicom_rescale_and_window(tmp_path):
    path = _dicom(tmp_path / "w.dcm", pixels=RAW, RescaleSlope=2, RescaleIntercept=-100,
                  WindowCenter=4000, WindowWidth=4000)
    raw = read_dicom(path, apply_voi=False).pixels
    assert raw.dtype == np.float32
    np.testing.assert_allclose(raw, RAW * 2.0 - 100)
    windowed = read_dicom(path).pixels
    # LINEAR window (PS3.3 C.11.2.1.2.1) onto the rescaled stored range -100 .. 8090
    low, high = -100.0, 4095 * 2 - 100.0
    ramp = ((np.array([3900.0, 5900.0]) - 3999.5) / 3999 + 0.5) * (high - low) + low
    np.testing.assert_allclose(windowed, [[low, low, ramp[0]], [ramp[1], high, high]], rtol=1e-6)


def test_dicom_bad_window_is_an_image_read_error(tmp_path):
    path = _dicom(tmp_path / "badwin.dcm", pixels=RAW, WindowCenter=100, WindowWidth=0)
    with pytest.raises(ImageReadError, match="badwin.dcm.*Window Width"):
        read_dicom(path)
    assert read_dicom(path, apply_voi=False).pixels.max() == 4095


def test_dicom_monochrome1_inverted(tmp_path):
    mono1 = read_dicom(_dicom(tmp_path / "m1.dcm", pixels=RAW, photometric="MONOCHROME1")).to_uint8()
    mono2 = read_dicom(_dicom(tmp_path / "m2.dcm", pixels=RAW)).to_uint8()
    np.testing.assert_array_equal(mono1, 255 - mono2)
    assert mono2[0, 0] == 0 and mono2[1, 2] == 255


def test_dicom_to_uint_and_read_image_routes(tmp_path):
    path = _dicom(tmp_path / "no_suffix", pixels=RAW)
    assert is_dicom(path)
    image = read_image(path)
    assert image.dtype == np.uint8 and image.shape == RAW.shape
    np.testing.assert_array_equal(image, read_dicom(path).to_uint8())
    wide = read_image(path, dicom_bits=16)
    assert wide.dtype == np.uint16 and wide.min() == 0 and wide.max() == 65535
    assert image_size(path) == RAW.shape


def test_dicom_tags_json_safe(tmp_path):
    path = _dicom(tmp_path / "t.dcm", pixels=RAW, WindowCenter=[100, 200], WindowWidth=[50, 60],
                  PatientName="Doe^Jane")
    tags = read_dicom(path).tags
    assert json.loads(json.dumps(tags)) == tags
    assert tags["PatientID"] == "P1" and tags["ViewPosition"] == "PA" and tags["Modality"] == "CR"
    assert tags["PixelSpacing"] == [0.139, 0.139] and tags["Rows"] == 2 and tags["Columns"] == 3
    assert tags["WindowCenter"] == [100.0, 200.0] and tags["StudyDate"] == "20240102"
    assert tags["TransferSyntaxUID"] == ExplicitVRLittleEndian
    assert read_dicom_tags(path) == tags


def test_dicom_without_pixel_data(tmp_path):
    path = _dicom(tmp_path / "nopix.dcm", Rows=4, Columns=4)
    with pytest.raises(ImageReadError, match="nopix.dcm.*no pixel data"):
        read_dicom(path)
    assert image_size(path) == (4, 4)


def test_dicom_unsupported_transfer_syntax(tmp_path):
    path = _dicom(tmp_path / "mpeg.dcm", pixels=RAW, transfer_syntax=MPEG2MPML)
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    message = str(info.value)
    assert "mpeg.dcm" in message and MPEG2MPML in message and "MPEG2" in message


def test_dicom_without_preamble_still_read(tmp_path):
    path = _dicom(tmp_path / "raw.dcm", pixels=RAW, preamble=False)
    np.testing.assert_allclose(read_dicom(path).pixels, RAW)


@pytest.mark.parametrize("content", [b"", b"plain text pretending to be DICOM\n" * 4])
def test_bad_dicom_files(tmp_path, content):
    (tmp_path / "bad.dcm").write_bytes(content)
    with pytest.raises(ImageReadError, match="bad.dcm"):
        read_image(tmp_path / "bad.dcm")


def test_is_dicom(tmp_path):
    (tmp_path / "a.png").write_bytes(_png_bytes())
    assert not is_dicom(tmp_path / "a.png")
    assert not is_dicom(tmp_path / "missing")
    assert is_dicom(tmp_path / "missing.DCM")


# ----------------------------------------------------------------- real DICOM files


@pytest.fixture(scope="module")
def wg04():
    """The three NEMA WG04 RG1 files decoded once: name -> DicomImage."""
    folder = _shared(WG04)
    return {name: read_dicom(folder / f"RG1_{name}.dcm") for name in ("UNCI", "J2KR", "J2KI")}


@pytest.mark.parametrize("name", ["UNCI", "J2KR", "J2KI"])
def test_wg04_monochrome1_lungs_dark(wg04, name):
    image = wg04[name].to_uint8()
    assert image.shape == (1955, 1841)
    height, width = image.shape
    rows = slice(int(0.3 * height), int(0.6 * height))
    lungs = np.r_[image[rows, int(0.2 * width):int(0.35 * width)].ravel(),
                  image[rows, int(0.65 * width):int(0.8 * width)].ravel()]
    spine = image[rows, int(0.45 * width):int(0.55 * width)]
    assert lungs.mean() + 40 < spine.mean()


def test_wg04_uncompressed_equals_lossy_source(wg04):
    # RG1_UNCI is the decompressed lossy image (LossyImageCompression=01, same SOP
    # Instance UID as RG1_J2KI), so J2KI decodes to it exactly.
    assert wg04["UNCI"].tags["SOPInstanceUID"] == wg04["J2KI"].tags["SOPInstanceUID"]
    np.testing.assert_array_equal(wg04["J2KI"].pixels, wg04["UNCI"].pixels)


def test_wg04_lossless_close_to_uncompressed(wg04):
    lossless, unci = wg04["J2KR"].pixels, wg04["UNCI"].pixels
    assert wg04["J2KR"].tags["TransferSyntaxUID"] == "1.2.840.10008.1.2.4.90"
    assert np.corrcoef(lossless.ravel(), unci.ravel())[0, 1] > 0.999
    difference = np.abs(wg04["J2KR"].to_uint8().astype(int) - wg04["UNCI"].to_uint8().astype(int))
    assert difference.mean() < 1.0


def test_wg04_tags_and_header_size(wg04):
    tags = wg04["UNCI"].tags
    assert tags["PhotometricInterpretation"] == "MONOCHROME1" and tags["BitsStored"] == 15
    assert tags["ViewPosition"] == "PA" and tags["Modality"] == "CR"
    assert image_size(WG04 / "RG1_J2KR.dcm") == (1955, 1841)


def test_siim_jpeg_baseline_dicom():
    path = _shared(SIIM)
    image = read_image(path)
    assert image.shape == (1024, 1024) and image.dtype == np.uint8
    assert image_size(path) == (1024, 1024)
    tags = read_dicom_tags(path)
    assert tags["TransferSyntaxUID"] == "1.2.840.10008.1.2.4.50"
    assert tags["PixelSpacing"] == [0.168, 0.168] and tags["ViewPosition"] == "PA"
    assert tags["PhotometricInterpretation"] == "MONOCHROME2"
    assert 50 < image.mean() < 200


# ----------------------------------------------------------------- to_float01


def test_to_float01_by_dtype_and_max():
    assert to_float01(np.array([0, 255], np.uint8)).tolist() == [0.0, 1.0]
    assert to_float01(np.array([0, 65535], np.uint16)).tolist() == [0.0, 1.0]
    twelve_bit = np.array([0, 1024, 4095], np.uint16)
    scaled = to_float01(twelve_bit, scale="max")
    assert scaled.dtype == np.float32 and scaled[-1] == 1.0
    assert to_float01(np.zeros(3, np.uint16), scale="max").tolist() == [0.0, 0.0, 0.0]
    assert to_float01(np.array([True, False])).tolist() == [1.0, 0.0]
    with pytest.raises(ConfigError):
        to_float01(twelve_bit, scale="bits")
    with pytest.raises(ConfigError):
        to_float01(np.array([1, 2], np.int64))
