"""The one thing pyproject.toml cannot say: the suites ship from folders outside the package.

suites/ (and its studies/) and results/calibration/ stay where they are in the repository; in
a wheel they become the package `bench_suites` (calibration files as bench_suites/calibration),
which bench.suites reads through importlib.resources when there is no clone around it.
"""

from setuptools import find_packages, setup

SHIPPED = {"bench_suites": "suites", "bench_suites.studies": "suites/studies",
           "bench_suites.calibration": "results/calibration"}

setup(
    packages=find_packages(include=["bench", "bench.*", "kernels", "kernels.*"]) + list(SHIPPED),
    package_dir=SHIPPED,
    package_data={"bench": ["record/schema/*.json", "record/schema/*.yaml"],
                  "bench_suites": ["*.toml"], "bench_suites.studies": ["*.toml"],
                  "bench_suites.calibration": ["*.json"]},
)
