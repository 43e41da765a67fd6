# Gibbous image: one image, every component (`gibbous webhook|extender|autoscaler|estimate`).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gibbous ./gibbous
# The cloud SDKs the image carries; OKE's (`oci`, ~250 MB) only when asked:
# --build-arg EXTRAS=aws,gcp,azure,oci
ARG EXTRAS=aws,gcp,azure
RUN pip install --no-cache-dir --prefix=/install ".[${EXTRAS}]"

FROM python:3.11-slim
COPY --from=build /install /usr/local
# Non-root, no shell needed at run time; the root filesystem can be mounted read-only.
RUN useradd --uid 65532 --no-create-home --shell /usr/sbin/nologin gibbous
USER 65532:65532
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
ENTRYPOINT ["gibbous"]
CMD ["--help"]
