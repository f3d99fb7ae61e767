"""HU decoding and preprocessing on real third-party CT files, checked against independent paths."""
import io

import numpy as np
import pydicom
import pytest
from pydicom.encaps import generate_frames

from dicom_samples import sample
from raylatent.data.dicom import (HU_MAX, HU_MIN, SkipFile, find_files, hu_to_model, model_to_hu,
                                  read_ct)


def raw_hu(path, frame=0, slope=None, intercept=None):
    """HU straight from the PixelData bytes with numpy: no pydicom pixel handlers involved."""
    ds = pydicom.dcmread(path)
    dtype = np.int16 if ds.PixelRepresentation else np.uint16
    arr = np.frombuffer(ds.PixelData, dtype=dtype).reshape(-1, ds.Rows, ds.Columns)[frame]
    slope = float(ds.RescaleSlope) if slope is None else slope
    intercept = float(ds.RescaleIntercept) if intercept is None else intercept
    hu = arr.astype(np.float64) * slope + intercept
    if "PixelPaddingValue" in ds:  # the scanner's "outside the scan" marker is air
        hu[arr == ds.PixelPaddingValue] = -1000.0
    return hu


@pytest.mark.parametrize("name", ["CT_small.dcm", "693_UNCR.dcm"])
def test_uncompressed_matches_raw_bytes(name):
    (fr,) = read_ct(sample(name))
    np.testing.assert_array_equal(fr.hu, raw_hu(sample(name)))


def test_jpeg2000_matches_its_uncompressed_twin():
    (j2k,) = read_ct(sample("693_J2KR.dcm"))
    assert pydicom.dcmread(sample("693_UNCR.dcm")).PixelPaddingValue == -2000
    assert pydicom.dcmread(sample("693_J2KR.dcm")).file_meta.TransferSyntaxUID.is_compressed
    np.testing.assert_array_equal(j2k.hu, raw_hu(sample("693_UNCR.dcm")))
    assert j2k.hu.min() == -1024 and j2k.hu.max() == 1468  # padding (-3024 HU) became air


def test_jpeg_lossless_matches_direct_libjpeg_decode():
    from libjpeg import decode

    path = sample("bad_sequence.dcm")  # a CT slice in JPEG Lossless, Process 14 SV1
    ds = pydicom.dcmread(path)
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.70"
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    stored = decode(bytes(frame))
    if ds.PixelRepresentation:
        stored = stored.astype(np.uint16).view(np.int16)
    expected = stored.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    (fr,) = read_ct(path)
    np.testing.assert_array_equal(fr.hu, expected)


def test_enhanced_multiframe_uses_functional_groups():
    path = sample("eCT_Supplemental.dcm")
    ds = pydicom.dcmread(path)
    assert "RescaleIntercept" not in ds  # only in the shared functional group
    frames = read_ct(path)
    assert [f.frame for f in frames] == [0, 1]
    assert [f.z_mm for f in frames] == [-159.0, -149.0]
    for f in frames:
        np.testing.assert_array_equal(f.hu, raw_hu(path, f.frame, 1.0, -1024.0))


def test_pixel_padding_becomes_air(tmp_path):
    ds = pydicom.dcmread(sample("CT_small.dcm"))
    arr = ds.pixel_array.copy()
    arr[:10, :10] = -2000
    ds.PixelData = arr.tobytes()
    ds.PixelPaddingValue = -2000
    ds.save_as(tmp_path / "pad.dcm")
    (fr,) = read_ct(tmp_path / "pad.dcm")
    assert np.all(fr.hu[:10, :10] == -1000.0)
    assert fr.hu[20, 20] == arr[20, 20] + float(ds.RescaleIntercept)


def test_bad_files_raise_skip_with_reason(tmp_path):
    good = sample("693_UNCR.dcm").read_bytes()
    cases = {
        "not DICOM": b"<xml>annotation</xml>" * 20,
        "truncated pixel data": good[: len(good) - 1000],
        "truncated or corrupt": sample("693_J2KR.dcm").read_bytes()[:50000],
        "not CT (modality MR)": sample("MR2_UNCR.dcm").read_bytes(),
    }
    ds = pydicom.dcmread(io.BytesIO(good))
    del ds.PixelData
    buf = io.BytesIO()
    ds.save_as(buf)
    cases["no pixel data"] = buf.getvalue()
    for expected, data in cases.items():
        with pytest.raises(SkipFile, match=expected.replace("(", r"\(").replace(")", r"\)")):
            read_ct(data)


def test_hu_scaling_is_fixed_window_and_invertible():
    hu = np.array([[-3024.0, -1000.0], [500.0, 3000.0]], np.float32)
    x = hu_to_model(hu, 2)
    np.testing.assert_allclose(x, [[-1, -1], [0, 1]], atol=1e-6)
    np.testing.assert_allclose(model_to_hu(x), np.clip(hu, HU_MIN, HU_MAX), atol=1e-3)


def test_resize_is_antialiased_lanczos():
    rng = np.random.default_rng(0)
    hu = rng.uniform(-1000, 2000, (512, 512)).astype(np.float32)
    x = hu_to_model(hu, 64)
    assert x.shape == (64, 64) and x.dtype == np.float32
    assert x.min() >= -1 and x.max() <= 1
    # white noise averaged over 8x8 blocks: an anti-aliased filter shrinks its spread a lot,
    # a point-sampling resize would keep it
    assert x.std() < 0.35 * hu_to_model(hu, 512).std()


def test_find_files_any_depth_any_suffix(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "IM0001").write_bytes(b"x")
    (tmp_path / "top.dcm").write_bytes(b"x")
    (tmp_path / ".hidden").write_bytes(b"x")
    assert find_files(tmp_path) == ["a/b/IM0001", "top.dcm"]
