# The store as a container image, in the style of the janitor's own
# (Dockerfile_bzr_store): the same ports, volume and entrypoint arguments, so
# the janitor's deployment runs it unchanged.
#
#   docker build -t janitor-store .
#   docker run --rm -p 9929:9929 -p 9930:9930 -v bzr:/bzr janitor-store \
#       --config /etc/janitor/janitor.conf
#
# The storage directory is the volume /bzr (BZR_STORE_PATH); the admin face
# listens on 9929, the public face on 9930.  Further arguments are
# `brz janitor-store serve` options (--vcs-path, --config, --database-url...).
#
# https://hub.docker.com/_/debian
FROM docker.io/debian:testing-slim

ARG DEBIAN_FRONTEND=noninteractive

RUN apt-get update --yes \
 && apt-get install --yes --no-install-recommends \
        ca-certificates \
        gcc \
        libpython3-dev \
        python3-pip \
 && apt-get upgrade --yes \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/*

COPY . /code

RUN pip3 install --break-system-packages "/code[gcp]" \
 && rm -rf /code

# Not root: the same service user as the systemd units (uid 999).
RUN useradd --system --uid 999 --user-group --home-dir /var/lib/janitor-store \
        --create-home --shell /usr/sbin/nologin janitor-store \
 && mkdir /bzr \
 && chown janitor-store:janitor-store /bzr
USER janitor-store
ENV HOME=/var/lib/janitor-store \
    BZR_STORE_PATH=/bzr

VOLUME /bzr

EXPOSE 9929

EXPOSE 9930

ENTRYPOINT ["brz", "janitor-store", "serve", "--port=9929", "--public-port=9930", "--listen-address=0.0.0.0"]
