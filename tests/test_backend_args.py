"""The backend options ``infer``, ``bench`` and ``serve`` share: one parser, one rule, no silent no-op."""

import argparse

import pytest

from mmreason.cli import main
from mmreason.commands.run_args import add_backend_arguments, backend_from_args
from mmreason.run_spec import BackendOptionError, backend_spec


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_backend_arguments(parser)
    return parser.parse_args(list(argv))


def test_openai_options_with_several_endpoints_image_resize_and_extra_options():
    args = _args("--backend", "openai", "--model", "Qwen/Qwen2.5-VL-7B-Instruct", "--base-url", "http://a/v1",
                 "--base-url", "http://b/v1", "--image-resize", "qwen2_5_vl", "--max-pixels", "1003520",
                 "--backend-option", "timeout=300", "--backend-option", "api_key_env=MY_KEY")
    assert backend_from_args(args) == ("openai", {
        "model": "Qwen/Qwen2.5-VL-7B-Instruct", "base_url": ["http://a/v1", "http://b/v1"], "max_pixels": 1003520,
        "image_resize": "qwen2_5_vl", "timeout": 300, "api_key_env": "MY_KEY"})
    assert backend_spec("openai", base_urls=["http://a/v1"]) == ("openai", {"base_url": "http://a/v1"})
    assert backend_spec(model="m", extra={"dtype": "bfloat16"}) == ("hf", {"model": "m", "dtype": "bfloat16"})


@pytest.mark.parametrize("kwargs, message", [
    ({"max_pixels": 1000}, "--max-pixels would do nothing with the rules backend"),
    ({"backend": "hf", "model": "m", "image_resize": "qwen2_5_vl"}, "hf reads the resize from the checkpoint"),
    ({"backend": "openai", "thinking": "off"}, "--thinking needs --backend hf"),
    ({"backend": "hf"}, "needs --model"),
    ({"backend": "openai", "model": "m", "extra": {"model": "n"}}, "model given twice"),
])
def test_options_a_backend_would_ignore_are_refused(kwargs, message):
    with pytest.raises(BackendOptionError, match=message):
        backend_spec(**kwargs)


def test_custom_factories_get_every_option():
    assert backend_spec("pkg:make", min_pixels=10, extra={"k": 1}) == ("pkg:make", {"min_pixels": 10, "k": 1})


def test_infer_refuses_an_openai_pixel_limit_without_a_resize_rule(tmp_path, capsys):
    from PIL import Image

    image = tmp_path / "x.png"
    Image.new("L", (32, 32)).save(image)
    code = main(["infer", "--image", str(image), "--question", "q", "--backend", "openai", "--model", "m",
                 "--max-pixels", "1003520", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "error: min_pixels/max_pixels would change nothing here: no Qwen image_resize" in err


def test_bench_refuses_a_pixel_limit_on_the_rules_backend(tmp_path, capsys):
    code = main(["bench", "--tasks", "synthetic", "--max-pixels", "1000", "--out", str(tmp_path)])
    assert code == 2 and "--max-pixels would do nothing with the rules backend" in capsys.readouterr().err
