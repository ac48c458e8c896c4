"""Data in: readers, dataset preparation (QC, gene selection), the simulators, the Zenodo
downloader, and the scenarios (dropout, mask, MCV) made from a dataset."""
