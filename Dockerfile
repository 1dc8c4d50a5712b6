# customer-ledger: one image for every `ledger` command (init, consume, project, serve, ...).
# Configure it only through the contract's variables (LEDGER_DATABASE_URL,
# LEDGER_KAFKA_BOOTSTRAP, LEDGER_TOPIC_PREFIX, LEDGER_API_TOKEN, LEDGER_AUDIENCES);
# see docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /src

# Dependencies first, from pyproject.toml alone, so that a source change does not
# reinstall them (Docker layer cache).
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The project itself (.dockerignore keeps out .venv, .ledger, caches, tests and .git).
COPY . ./
RUN pip install . \
    && rm -rf build ./*.egg-info

# Run as an unprivileged user with a writable home as the working directory.
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/ledger ledger
USER ledger
WORKDIR /home/ledger

EXPOSE 8000
ENTRYPOINT ["ledger"]
CMD ["--help"]
