"""The converters' options: one schema per converter gives its flags and checks its Python keywords."""
from __future__ import annotations

import dataclasses
import inspect

import pytest

from cococxr.converters import commands
from cococxr.converters.class_folders import (convert_class_folders, convert_class_folders_by_split,
                                              convert_class_tree)
from cococxr.converters.covid_radiography import convert_covid_radiography
from cococxr.converters.dicom import convert_dicom
from cococxr.converters.export_masks import export_masks
from cococxr.converters.export_rle_csv import export_rle_csv
from cococxr.converters.inspect_rle import inspect_rle
from cococxr.converters.mask_folders import MaskFolderOptions, convert_mask_folders
from cococxr.converters.metadata import convert_metadata
from cococxr.converters.rle_csv import convert_rle_csv
from cococxr.errors import ConfigError

# (function, positional arguments, a misspelt keyword, the option it should suggest)
CALLS = [
    (convert_mask_folders, ("images", "masks"), "clas_name", "class_name"),
    (convert_covid_radiography, ("root",), "allow_missing_mask", "allow_missing_masks"),
    (convert_class_folders, ("root",), "layuot", "layout"),
    (convert_class_folders_by_split, ("root",), "verify_image", "verify_images"),
    (convert_class_tree, ("root",), "out_dri", "out_dir"),
    (convert_rle_csv, ("labels.csv",), "presett", "preset"),
    (convert_metadata, ("meta.csv", "images"), "filter", "filters"),
    (convert_dicom, ("dicoms", "png"), "tag", "tags"),
    (export_masks, ("coco.json", "out"), "mdoe", "mode"),
    (export_rle_csv, ("coco.json",), "submision", "submission"),
    (inspect_rle, ("labels.csv", "some-id"), "class_nam", "class_name"),
]


@pytest.mark.parametrize("function, args, wrong, right", CALLS, ids=[c[0].__name__ for c in CALLS])
def test_unknown_keyword_is_refused_with_a_suggestion(function, args, wrong, right, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may be read or written: the options are checked first
    with pytest.raises(ConfigError, match=rf"unknown key\(s\) '{wrong}' \(did you mean '{right}'\?\)"):
        function(*args, **{wrong: 1})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", commands.COMMANDS, ids=[c.name for c in commands.COMMANDS])
def test_every_flag_is_a_keyword_of_the_function(command):
    """The command calls its function with its schema's fields: the positional parameters
    are fields of the schema, and everything else goes through **options."""
    schema, function = command.schema, command.function
    fields = [f.name for f in dataclasses.fields(schema)]
    params = inspect.signature(function).parameters
    named = [name for name, p in params.items() if p.kind is not p.VAR_KEYWORD]
    assert set(named) <= set(fields), (named, fields)
    assert any(p.kind is p.VAR_KEYWORD for p in params.values())


def test_values_are_checked_as_given(tmp_path):
    with pytest.raises(ConfigError, match="workers: expected an integer, got '2'"):
        convert_mask_folders(tmp_path, tmp_path, workers="2")
    with pytest.raises(ConfigError, match="size_mismatch='shrink' is not one of resize, resize-any, error"):
        convert_mask_folders(tmp_path, tmp_path, size_mismatch="shrink")
    with pytest.raises(ConfigError, match="--class-map '1': expected value=name pairs"):
        convert_mask_folders(tmp_path, tmp_path, class_map="1")
    with pytest.raises(ConfigError, match="keyword arguments: images: a value is required, got None"):
        convert_mask_folders(None, tmp_path)


def test_class_folder_functions_refuse_the_other_output():
    with pytest.raises(ConfigError, match="convert_class_folders_by_split"):
        convert_class_folders("root", out_dir="x")
    with pytest.raises(ConfigError, match="pass out_dir, not out"):
        convert_class_folders_by_split("root", out="x.json")
    with pytest.raises(ConfigError, match="exactly one of --out FILE"):
        convert_class_tree("root")


def test_mask_folder_options_parse_the_class_map_and_keep():
    from cococxr.config import load_options

    opts = load_options(MaskFolderOptions, images="i", masks="m", class_map="1=left,255,0,0=right",
                        keep="patientid:patient_id,view")
    assert opts.class_map == {1: "left", (255, 0, 0): "right"}
    assert opts.keep == [("patientid", "patient_id"), ("view", "view")]
    # a parsed value parses to itself (the CLI hands the function what it was given)
    again = load_options(MaskFolderOptions, images="i", masks="m", class_map=opts.class_map, keep=opts.keep)
    assert (again.class_map, again.keep) == (opts.class_map, opts.keep)
