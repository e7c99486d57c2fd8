"""The converters' subcommands (``convert ...``, ``export ...``, ``inspect-rle``).

Each is declared once, from its option schema and the function it runs: the schema
gives the arguments, the function gets them as keywords, and what it returns is printed.
"""
from cococxr.command import Command
from cococxr.converters import (class_folders, covid_radiography, dicom, export_masks, export_rle_csv,
                                inspect_rle, mask_folders, metadata, rle_csv)
from cococxr.converters import dicom_seg, export_dicom_seg, export_nifti, nifti, rtstruct
from cococxr.converters.common import print_report

COMMANDS = [
    Command.from_schema(("convert", "masks"), "image + mask folders -> COCO", mask_folders.MaskFolderOptions,
                        mask_folders.convert_mask_folders, print_report),
    Command.from_schema(("convert", "covid-radiography"), "COVID-19 Radiography Database layout -> COCO",
                        covid_radiography.CovidRadiographyOptions, covid_radiography.convert_covid_radiography,
                        print_report),
    Command.from_schema(("convert", "folders"), "class-per-folder trees -> COCO image labels",
                        class_folders.ClassFolderOptions, class_folders.convert_class_tree, print_report),
    Command.from_schema(("convert", "rle-csv"), "Kaggle RLE CSV -> COCO", rle_csv.RleCsvOptions,
                        rle_csv.convert_rle_csv, print_report),
    Command.from_schema(("convert", "metadata"), "metadata table (CSV) -> COCO image labels",
                        metadata.MetadataOptions, metadata.convert_metadata, print_report),
    Command.from_schema(("convert", "dicom"), "DICOM folder -> PNG + COCO image records", dicom.DicomOptions,
                        dicom.convert_dicom, print_report),
    Command.from_schema(("convert", "nifti"), "NIfTI image + label volumes (pairs, folders, nnU-Net, MSD) -> slice PNGs + COCO", nifti.NiftiOptions, nifti.convert_nifti, print_report),
    Command.from_schema(("convert", "rtstruct"), "DICOM series + RTSTRUCT -> slice PNGs + COCO", rtstruct.RtstructOptions, rtstruct.convert_rtstruct, print_report),
    Command.from_schema(("convert", "dicom-seg"), "DICOM series + DICOM-SEG -> slice PNGs + COCO", dicom_seg.DicomSegOptions, dicom_seg.convert_dicom_seg, print_report),
    Command.from_schema(("export", "masks"), "COCO -> mask PNG folders", export_masks.ExportMasksOptions,
                        export_masks.export_masks, print_report),
    Command.from_schema(("export", "rle-csv"), "COCO -> Kaggle RLE CSV", export_rle_csv.ExportRleCsvOptions,
                        export_rle_csv.export_rle_csv, print_report),
    Command.from_schema(("export", "nifti"), "COCO slices -> NIfTI label volumes (voxel-exact, original affine)", export_nifti.ExportNiftiOptions, export_nifti.export_nifti, print_report),
    Command.from_schema(("export", "dicom-seg"), "COCO slices of a DICOM series -> DICOM-SEG", export_dicom_seg.ExportDicomSegOptions, export_dicom_seg.export_dicom_seg, print_report),
    Command.from_schema(("inspect-rle",), "render one image's RLE mask in both pixel orders",
                        inspect_rle.InspectRleOptions, inspect_rle.inspect_rle, inspect_rle.print_inspection),
]
