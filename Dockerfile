# imgcheck as a container image: `docker run --rm -v "$PWD:/work" -w /work imgcheck verify latest`.
#
# Two stages on the same base: the first builds imgcheck's wheel and installs it with its
# dependencies into a venv; the second copies only that venv, so no compiler, pip cache or source
# tree reaches the final image. BASE is any Debian-like image with python3 and its venv module.
#
# Offline builds (no index reachable): put wheels for imgcheck's dependencies and for setuptools
# and wheel in ./wheelhouse and pass --build-arg PIP_NO_INDEX=1 --build-arg PIP_FIND_LINKS=/src/wheelhouse.
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
ARG PIP_NO_INDEX
ARG PIP_FIND_LINKS
ARG PIP_INDEX_URL
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
COPY . /src
RUN python3 -m venv /opt/imgcheck \
 && /opt/imgcheck/bin/python -m pip wheel --no-deps --wheel-dir /tmp/dist /src \
 && /opt/imgcheck/bin/python -m pip install /tmp/dist/imgcheck-*.whl \
 && /opt/imgcheck/bin/python -m pip uninstall --yes pip \
 && /opt/imgcheck/bin/imgcheck --version

FROM ${BASE}
ARG VERSION=0.1.0
ARG REVISION
ARG CREATED
ARG SOURCE
LABEL org.opencontainers.image.title="imgcheck" \
      org.opencontainers.image.description="A release gate for container images" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --gid 10001 imgcheck \
 && useradd --uid 10001 --gid 10001 --no-log-init --create-home --home-dir /home/imgcheck \
      --shell /usr/sbin/nologin imgcheck
COPY --from=build /opt/imgcheck /opt/imgcheck
ENV PATH=/opt/imgcheck/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /home/imgcheck
ENTRYPOINT ["imgcheck"]
CMD ["--help"]
