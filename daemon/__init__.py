"""aomd: policy daemon for Huawei Cloud AOM automation workflows."""

__version__ = "0.1.0"
