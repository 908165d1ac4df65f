"""helpers.audio: decoding with soundfile + soxr into mono float32 at 16 kHz, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from helpers.audio import AudioError, decode


def tone(seconds: float, rate: int, frequency: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.4 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[spectrum.argmax()])


def test_mp3_at_48k_becomes_16k_mono_float32(tmp_path):
    path = tmp_path / "tone.mp3"
    sf.write(path, tone(1.0, 48000), 48000)
    samples, duration = decode(path)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert duration == pytest.approx(1.0, abs=0.03)  # mp3 adds a little padding
    assert len(samples) == pytest.approx(16000, abs=500)
    assert dominant_frequency(samples, 16000) == pytest.approx(440, abs=3)  # resampled, not just truncated


def test_stereo_44k_wav_is_averaged_and_resampled(tmp_path):
    left = tone(0.5, 44100)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, 0.5 * left], axis=1), 44100)
    samples, duration = decode(path)
    assert samples.ndim == 1 and len(samples) == 8000 and duration == pytest.approx(0.5)
    assert np.abs(samples).max() == pytest.approx(0.75 * 0.4, abs=0.01)  # mean of the two channels
    assert dominant_frequency(samples, 16000) == pytest.approx(440, abs=3)


@pytest.mark.parametrize("extension", ["flac", "ogg", "wav"])
def test_bytes_and_path_give_the_same_samples(tmp_path, extension):
    path = tmp_path / f"clip.{extension}"
    sf.write(path, tone(0.3, 22050), 22050)
    from_path, _ = decode(path)
    from_bytes, duration = decode(path.read_bytes())
    np.testing.assert_array_equal(from_path, from_bytes)
    assert duration == pytest.approx(0.3, abs=0.01)


def test_other_target_rate(tmp_path):
    path = tmp_path / "clip.wav"
    sf.write(path, tone(1.0, 16000), 16000)
    samples, duration = decode(path, target_sr=8000)
    assert len(samples) == 8000 and duration == pytest.approx(1.0)


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(AudioError, match=r"nowhere\.mp3: file not found"):
        decode(tmp_path / "nowhere.mp3")


def test_corrupt_file_is_an_audio_error_and_a_value_error(tmp_path):
    path = tmp_path / "broken.mp3"
    path.write_bytes(b"this is not audio" * 10)
    with pytest.raises(ValueError, match=r"broken\.mp3: corrupt or unsupported audio") as caught:
        decode(path)
    assert isinstance(caught.value, AudioError)
    assert caught.value.reason.startswith("corrupt or unsupported audio")


def test_empty_inputs(tmp_path):
    empty_file = tmp_path / "empty.wav"
    empty_file.write_bytes(b"")
    with pytest.raises(AudioError, match=r"empty\.wav: empty file \(0 bytes\)"):
        decode(empty_file)
    with pytest.raises(AudioError, match=r"empty audio data"):
        decode(b"")
    no_samples = tmp_path / "silent.wav"
    sf.write(no_samples, np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match=r"silent\.wav: empty audio \(0 samples\)"):
        decode(no_samples)


def test_bytes_errors_use_the_given_name():
    with pytest.raises(AudioError, match=r"clips/x\.mp3: corrupt"):
        decode(b"garbage" * 20, name="clips/x.mp3")
