"""Robust image reading and input listing: every bad or unusual file made here, in the test."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

from ropevit_det.camera_trap.detection.worker_inputs import DetectorInputDataset, make_input_loader
from ropevit_det.camera_trap.inputs.decoding import read_image_rgb
from ropevit_det.camera_trap.inputs.listing import InputRootError, list_inputs, scan_inputs
from ropevit_det.engine.predictor import InputSpec
from tests.camtrap_helpers import MINI_IMAGES, save_exif_rotated_jpeg, save_rgb


def test_exif_rotated_image_comes_back_as_a_viewer_shows_it(tmp_path):
    path = save_exif_rotated_jpeg(tmp_path / "rot.jpg", stored_w=40, stored_h=20, orientation=6)
    with Image.open(path) as raw:
        assert raw.size == (40, 20)  # stored landscape
    result = read_image_rgb(path)
    assert result.failure is None
    assert result.image.shape == (40, 20, 3)  # displayed portrait: rotated 90 degrees clockwise
    assert result.original_hw == (40, 20)
    # The red block stored at the top-left is shown at the top-right.
    assert result.image[2:8, -8:-2, 0].mean() > 200 and result.image[2:8, -8:-2, 1].mean() < 60
    assert result.image[2:8, 2:8, 0].mean() < 60


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (32, 24), (0, 255, 255, 0)).save(path, quality=95)  # pure red in CMYK
    with Image.open(path) as raw:
        assert raw.mode == "CMYK"
    result = read_image_rgb(path)
    assert result.image.shape == (24, 32, 3) and result.image.dtype == np.uint8
    r, g, b = result.image.reshape(-1, 3).mean(axis=0)
    assert r > 230 and g < 30 and b < 30


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    path = tmp_path / "gray16.png"
    values = np.array([[0, 16384, 32768, 65535]], dtype=np.uint16).repeat(3, axis=0)
    Image.fromarray(values).save(path)
    with Image.open(path) as raw:
        assert raw.mode.startswith("I")
    result = read_image_rgb(path)
    assert result.image.dtype == np.uint8 and result.image.shape == (3, 4, 3)
    # Clipping would give [0, 255, 255, 255]; scaling the 16-bit range gives a gradient.
    np.testing.assert_array_equal(result.image[0, :, 0], [0, 64, 128, 255])
    assert (result.image[..., 0] == result.image[..., 2]).all()


@pytest.mark.parametrize(
    "mode, fill, expected",
    [
        ("L", 100, (100, 100, 100)),
        ("RGBA", (10, 200, 30, 0), (10, 200, 30)),  # alpha dropped, colour kept
        ("LA", (50, 255), (50, 50, 50)),
    ],
)
def test_other_modes_become_rgb(tmp_path, mode, fill, expected):
    path = tmp_path / f"{mode}.png"
    Image.new(mode, (6, 4), fill).save(path)
    result = read_image_rgb(path)
    assert result.image.shape == (4, 6, 3)
    np.testing.assert_array_equal(result.image[0, 0], expected)


def test_palette_with_transparency(tmp_path):
    path = tmp_path / "pal.png"
    img = Image.new("P", (5, 5), 1)
    img.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    img.info["transparency"] = 0
    img.save(path)
    result = read_image_rgb(path)
    np.testing.assert_array_equal(result.image[2, 2], (0, 0, 255))


def test_corrupt_and_truncated_files_become_failures(tmp_path):
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg" * 10)
    good = save_rgb(tmp_path / "good.jpg", 256, 256, color=(10, 20, 30))
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    for path in (corrupt, truncated, empty):
        result = read_image_rgb(path)
        assert result.image is None and result.original_hw is None
        assert isinstance(result.failure, str) and result.failure
    assert "truncated" in read_image_rgb(truncated).failure
    assert read_image_rgb(tmp_path / "nope.jpg").failure == "file not found"


def test_truncated_file_is_a_failure_even_when_pillow_is_told_to_load_truncated_images(tmp_path, monkeypatch):
    # Importing megadetector's visualization_utils switches this process-wide flag on.
    from PIL import ImageFile

    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    good = save_rgb(tmp_path / "good.jpg", 256, 256, color=(10, 20, 30))
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert "truncated" in read_image_rgb(truncated).failure
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored for whoever set it


def test_large_jpeg_is_downscaled_within_the_pixel_budget(tmp_path, monkeypatch):
    path = save_rgb(tmp_path / "big.jpg", 3000, 2000)
    decoded_sizes = []
    original_load = JpegImagePlugin.JpegImageFile.load

    def spy_load(self):
        decoded_sizes.append(self.size)  # the size the JPEG decoder produces, after draft()
        return original_load(self)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "load", spy_load)
    result = read_image_rgb(path, max_pixels=500_000)
    # Draft mode decoded at 1/2 scale, never the full 6 MP.
    assert decoded_sizes and max(w * h for w, h in decoded_sizes) <= 1500 * 1000
    h, w, _ = result.image.shape
    assert h * w <= 500_000 and h * w > 400_000
    assert abs(w / h - 1.5) < 0.01
    assert result.original_hw == (2000, 3000)  # the size boxes are normalised against stays the real one


def test_decompression_bomb_is_a_failure(tmp_path, monkeypatch):
    path = save_rgb(tmp_path / "bomb.png", 200, 200)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 40,000 px > 2 x limit: Pillow raises
    result = read_image_rgb(path)
    assert result.image is None and result.failure.startswith("decompression bomb")


def test_list_inputs_folder_text_file_and_glob(tmp_path, caplog):
    root = tmp_path / "card"
    for rel in ("100EK113/IMG_0002.JPG", "100EK113/IMG_0001.JPG", "101EK113/sub/x.png"):
        save_rgb(root / rel, 4, 4)
    (root / "100EK113/notes.txt").write_text("field notes")
    (root / "Thumbs.db").write_bytes(b"\0")
    (root / ".hidden").mkdir()
    save_rgb(root / ".hidden/thumb.jpg", 4, 4)
    with caplog.at_level(logging.WARNING):
        top, files = list_inputs(root)
    assert top == root.resolve()
    assert files == ["100EK113/IMG_0001.JPG", "100EK113/IMG_0002.JPG", "101EK113/sub/x.png"]
    assert "skipped 2 non-image files" in caplog.text
    assert scan_inputs(root).skipped == ["100EK113/notes.txt", "Thumbs.db"]

    listing = tmp_path / "list.txt"
    listing.write_text("card/100EK113/IMG_0002.JPG\n\ncard/101EK113/sub/x.png\n")  # read verbatim: no comments
    top, files = list_inputs(listing)
    assert top == root.resolve() and files == ["100EK113/IMG_0002.JPG", "101EK113/sub/x.png"]

    top, files = list_inputs(str(root / "**" / "*.JPG"))
    assert top == root.resolve() and files == ["100EK113/IMG_0001.JPG", "100EK113/IMG_0002.JPG"]

    with pytest.raises(FileNotFoundError, match="matches no files"):
        list_inputs(str(root / "*.tif"))


def test_loader_decodes_in_workers_in_order(tmp_path):
    root = tmp_path / "in"
    save_rgb(root / "a.jpg", 30, 20)
    (root / "b.jpg").write_bytes(b"garbage")
    save_rgb(root / "c.png", 10, 12)
    top, files = list_inputs(root)
    spec = InputSpec(min_size=0, max_size=0)  # no resizing: the model input is the decoded image
    loader = make_input_loader(DetectorInputDataset(top, files, spec, keep_image=True), batch_size=2, num_workers=2)
    items = list(loader)
    assert [i.rel_path for i in items] == ["a.jpg", "b.jpg", "c.png"]  # two workers, input order kept
    assert items[0].image.shape == (20, 30, 3) and items[0].original_hw == (20, 30)
    assert items[0].model_input["image"].shape == (3, 20, 30)
    assert items[1].image is None and items[1].failure
    assert items[2].image.shape == (12, 10, 3)


def test_real_sample_frames_read():
    result = read_image_rgb(MINI_IMAGES / "serengeti_S1_E03_R3_PICT0038.jpeg")
    assert result.image.shape == (1536, 2048, 3) and result.original_hw == (1536, 2048)
    assert result.image.flags.writeable  # torch.from_numpy needs a writable array


@pytest.mark.parametrize(
    "written, expected",
    [
        ("2023:11:05 06:42:17", "2023:11:05 06:42:17"),
        ("0000:00:00 00:00:00", None),  # a camera whose clock battery is flat: no time rather than a wrong one
    ],
)
def test_capture_time_comes_from_exif_date_time_original(tmp_path, written, expected):
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = written  # Exif IFD, DateTimeOriginal
    path = tmp_path / "timed.jpg"
    Image.new("RGB", (8, 6)).save(path, exif=exif)
    assert read_image_rgb(path).datetime == expected
    assert read_image_rgb(save_rgb(tmp_path / "plain.jpg", 8, 6)).datetime is None


def test_listing_keeps_videos_of_any_case(tmp_path):
    for rel in ("a/clip.MP4", "a/b.mkv", "a/c.Mov", "a/d.avi", "a/x.jpg"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    (tmp_path / "a/e.wmv").write_bytes(b"")
    listing = scan_inputs(tmp_path)
    assert listing.files == ["a/b.mkv", "a/c.Mov", "a/clip.MP4", "a/d.avi", "a/x.jpg"]
    assert listing.skipped == ["a/e.wmv"]


def test_input_root_keeps_sub_folders_and_refuses_outsiders(tmp_path):
    card = tmp_path / "card"
    save_rgb(card / "cam3/d.jpg", 4, 4)
    save_rgb(tmp_path / "elsewhere/frame.jpg", 4, 4)
    (card / "cam3/linked.jpg").symlink_to(tmp_path / "elsewhere/frame.jpg")  # a linked frame keeps its own name
    listing = tmp_path / "todo.txt"
    listing.write_text(f"{card / 'cam3/d.jpg'}\n{card / 'cam3/linked.jpg'}\n")
    assert list_inputs(listing) == (card.resolve() / "cam3", ["d.jpg", "linked.jpg"])
    assert list_inputs(listing, root=card) == (card.resolve(), ["cam3/d.jpg", "cam3/linked.jpg"])
    assert list_inputs(card / "cam3", root=card)[1] == ["cam3/d.jpg", "cam3/linked.jpg"]
    assert list_inputs(str(card / "cam3" / "*.jpg"), root=card)[1] == ["cam3/d.jpg", "cam3/linked.jpg"]
    assert list_inputs(card / "cam3/d.jpg", root=card)[1] == ["cam3/d.jpg"]
    with pytest.raises(InputRootError, match=r"1 of 1 inputs are not under the input root .*card .*frame\.jpg"):
        list_inputs(tmp_path / "elsewhere/frame.jpg", root=card)
    with pytest.raises(InputRootError, match="is not a folder"):
        list_inputs(listing, root=listing)
