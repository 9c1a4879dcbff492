# syntax=docker/dockerfile:1
#
# The fmon production image. `docker compose build` builds it for docker-compose.yml; by hand:
#   docker build -t fmon .
#   docker run --rm fmon --help
#
# Stage "build" installs exactly what uv.lock pins (no resolution, no dev tools) into a
# virtual environment at /opt/fmon/.venv, with fmon itself installed as a regular package.
# The final stage is the same slim Python plus that venv, running as an unprivileged user;
# it holds no source tree, no uv and no compiler.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build

# The uv that wrote uv.lock (lock format "revision = 5"); bump both together.
ARG UV_VERSION=0.13.8
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/fmon/.venv \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN pip install --no-cache-dir "uv==${UV_VERSION}"

WORKDIR /src

# Third-party dependencies first: this layer is rebuilt only when the lock file changes.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project

# Then fmon itself: the import packages listed in pyproject.toml [tool.hatch.build.targets.wheel].
# Every file under these folders goes into the wheel, so the data the code reads at run time
# (rule and playbook libraries, migrations, console files, the demo's estate in runtime/demo_data)
# is installed with it; tests/test_packaging.py checks this on a built wheel. Copied by name, so
# that nothing else of the build context (docs, tests, bench) reaches the image; .gitignore keeps
# __pycache__ out of the wheel.
COPY .gitignore ./
COPY core ./core
COPY storage ./storage
COPY ingest ./ingest
COPY rules ./rules
COPY alarms ./alarms
COPY playbooks ./playbooks
COPY maintenance ./maintenance
COPY api ./api
COPY simulators ./simulators
COPY runtime ./runtime
RUN uv sync --frozen --no-dev --no-editable


FROM ${PYTHON_IMAGE}

ARG FMON_UID=10001
RUN groupadd --system --gid "${FMON_UID}" fmon \
    && useradd --system --uid "${FMON_UID}" --gid fmon --home-dir /var/lib/fmon \
       --shell /usr/sbin/nologin fmon \
    && install -d -o fmon -g fmon -m 0750 /var/lib/fmon

# Owned by root: the fmon user can run the code but not change it.
COPY --from=build /opt/fmon/.venv /opt/fmon/.venv

# FMON_* variables are fmon settings (core/settings.py). Inside a container the API must listen
# on all interfaces; the embedded-store fallbacks (SQLite) live in the data directory.
ENV PATH="/opt/fmon/.venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    FMON_DATA_DIR=/var/lib/fmon \
    FMON_API_HOST=0.0.0.0

WORKDIR /var/lib/fmon
USER fmon
EXPOSE 8000

ENTRYPOINT ["fmon"]
CMD ["--help"]
