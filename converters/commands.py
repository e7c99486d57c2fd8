"""The converters' subcommands (``convert ...``, ``export ...``, ``inspect-rle``)."""
from cococxr.command import Command
from cococxr.converters import (class_folders, covid_radiography, dicom, export_masks, export_rle_csv,
                                inspect_rle, mask_folders, metadata, rle_csv)
from cococxr.converters import dicom_seg, export_dicom_seg, export_nifti, nifti, rtstruct  # volumes

COMMANDS = [
    Command(("convert", "masks"), "image + mask folders -> COCO", mask_folders.configure_parser,
            mask_folders.run),
    Command(("convert", "covid-radiography"), "COVID-19 Radiography Database layout -> COCO",
            covid_radiography.configure_parser, covid_radiography.run),
    Command(("convert", "folders"), "class-per-folder trees -> COCO image labels",
            class_folders.configure_parser, class_folders.run),
    Command(("convert", "rle-csv"), "Kaggle RLE CSV -> COCO", rle_csv.configure_parser, rle_csv.run),
    Command(("convert", "metadata"), "metadata table (CSV) -> COCO image labels", metadata.configure_parser,
            metadata.run),
    Command(("convert", "dicom"), "DICOM folder -> PNG + COCO image records", dicom.configure_parser,
            dicom.run),
    Command(("convert", "nifti"), "NIfTI image + label volumes (pairs, folders, nnU-Net, MSD) -> slice PNGs + COCO",
            nifti.configure_parser, nifti.run),
    Command(("convert", "rtstruct"), "DICOM series + RTSTRUCT -> slice PNGs + COCO", rtstruct.configure_parser,
            rtstruct.run),
    Command(("convert", "dicom-seg"), "DICOM series + DICOM-SEG -> slice PNGs + COCO", dicom_seg.configure_parser,
            dicom_seg.run),
    Command(("export", "masks"), "COCO -> mask PNG folders", export_masks.configure_parser, export_masks.run),
    Command(("export", "rle-csv"), "COCO -> Kaggle RLE CSV", export_rle_csv.configure_parser,
            export_rle_csv.run),
    Command(("export", "nifti"), "COCO slices -> NIfTI label volumes (voxel-exact, original affine)",
            export_nifti.configure_parser, export_nifti.run),
    Command(("export", "dicom-seg"), "COCO slices of a DICOM series -> DICOM-SEG", export_dicom_seg.configure_parser,
            export_dicom_seg.run),
    Command(("inspect-rle",), "render one image's RLE mask in both pixel orders", inspect_rle.configure_parser,
            inspect_rle.run),
]
