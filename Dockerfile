# Gibbous image: one image, every component (`gibbous webhook|extender|autoscaler|estimate`).
#
# BASE is any image with Python >= 3.11 and its venv module: the public default, or one
# built from Debian packages where no registry image can be pulled (scripts/build-image
# --debian-base makes it with debootstrap and passes it here).
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
# The cloud SDKs the image carries; OKE's (`oci`, ~250 MB) only when asked:
# --build-arg EXTRAS=aws,gcp,azure,oci
ARG EXTRAS=aws,gcp,azure
# Where the build's network needs a CA of its own to reach PyPI (a proxy that inspects
# TLS): a CA bundle mounted for the build and named here; never part of the image.
ARG PIP_CERT
# A virtual environment at the same path in both stages: the same layout whichever
# Python the base installs (python:3.11-slim's /usr/local or Debian's /usr).
# The dependencies first, from pyproject.toml alone (an empty package stands in for the
# source), so a change to the source rebuilds only the last layer, not every download;
# the stub's build directory goes with it (setuptools would keep its older copies).
RUN if [ -z "$PIP_CERT" ]; then unset PIP_CERT; fi \
    && python3 -m venv /opt/gibbous \
    && mkdir gibbous && touch gibbous/__init__.py \
    && /opt/gibbous/bin/pip install --no-cache-dir --disable-pip-version-check ".[${EXTRAS}]" \
    && /opt/gibbous/bin/pip uninstall --yes --disable-pip-version-check gibbous \
    && rm -rf gibbous build ./*.egg-info
COPY gibbous ./gibbous
RUN if [ -z "$PIP_CERT" ]; then unset PIP_CERT; fi \
    && /opt/gibbous/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps . \
    && /opt/gibbous/bin/gibbous --version

FROM ${BASE}
COPY --from=build /opt/gibbous /opt/gibbous
# Non-root, no shell needed at run time; the root filesystem can be mounted read-only.
RUN useradd --uid 65532 --no-create-home --shell /usr/sbin/nologin gibbous
USER 65532:65532
ENV PATH=/opt/gibbous/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
ENTRYPOINT ["gibbous"]
CMD ["--help"]
