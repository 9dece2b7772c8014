"""The result file's one owner: files (write, read, list, migrate), build (the records), stats (the verdict rule and its intervals), schema."""
