"""The one Settings class: the only code in crackq that reads the environment."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"
DEFAULT_DATABASE_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/crackq"
# models.formats.PHOTO_FORMAT_NAMES as a type (a test keeps the two equal)
ImageFormat = Literal["JPEG", "MPO", "PNG", "WEBP", "TIFF", "BMP", "GIF"]
DEFAULT_IMAGE_FORMATS: tuple[ImageFormat, ...] = ("JPEG", "MPO", "PNG", "WEBP", "TIFF")


class Settings(BaseSettings):
    """Every setting crackq has; each maps to an environment variable `CRACKQ_<NAME>`."""

    model_config = SettingsConfigDict(
        env_prefix="CRACKQ_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        secrets_dir=None,
    )

    # --- services -----------------------------------------------------------------------
    broker_url: SecretStr = Field(
        SecretStr(DEFAULT_BROKER_URL),
        description="Redis broker URL (redis://, rediss:// for TLS; password in the URL).",
    )
    database_url: SecretStr = Field(
        SecretStr(DEFAULT_DATABASE_URL),
        description="SQLAlchemy URL of the PostgreSQL database holding results.",
    )
    database_url_file: Path | None = Field(
        None, description="File holding the database URL (Docker/K8s secret); wins if set."
    )
    broker_url_file: Path | None = Field(
        None, description="File holding the broker URL (Docker/K8s secret); wins if set."
    )
    embedded: Literal["auto", "always", "never"] = Field(
        "auto",
        description="Start embedded Redis/PostgreSQL for the demo when none is configured "
        "or answering: auto, always (forced, e.g. in tests) or never.",
    )
    data_dir: Path = Field(
        Path(".crackq"), description="Local folder for embedded servers, runs and checkpoints."
    )
    visibility_timeout_s: int = Field(
        3600,
        description="Redis visibility timeout: an unacked message is redelivered after this "
        "long if its worker died. Must exceed the longest inference batch.",
    )
    event_flush_ms: int = Field(
        50,
        ge=0,
        le=5000,
        description="Task events (Flower) are published at most this often, a batch's "
        "events together (worker.eventflush); 0 = Celery's flush on every event-loop turn.",
    )

    # --- model / inference --------------------------------------------------------------
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N.")
    model_checkpoint: Path | None = Field(
        None, description="Checkpoint to serve; overrides the registry's promoted version."
    )
    pretrained: Literal["auto", "always", "never"] = Field(
        "auto",
        description="Use torchvision ImageNet weights (IMAGENET1K_V2) when no trained "
        "checkpoint exists: auto (if cached locally), always (fail if missing), never.",
    )
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="Inference numerics; auto = bf16 on CPUs/GPUs that support it."
    )
    channels_last: bool = Field(True, description="Use channels_last memory format.")
    compile: Literal["auto", "on", "off"] = Field(
        "auto",
        description="torch.compile the model (torch backend): auto = on for GPUs, off on "
        "CPUs. Compiles one shape per power-of-two batch size at load (minutes).",
    )
    cuda_graphs: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Replay the forward pass from captured CUDA graphs: auto = on for GPUs.",
    )
    backend: Literal["auto", "torch", "openvino"] = Field(
        "auto",
        description="Inference engine: auto = OpenVINO on the CPU when installed "
        "(crackq[openvino]), else torch; GPUs always use torch.",
    )
    int8: Literal["auto", "off"] = Field(
        "auto",
        description="auto: fine-tuning runs also save an INT8 graph of the model when it "
        "agrees with fp32 on the run's validation photos (needs crackq[openvino]), and "
        "OpenVINO workers serve it (about 1.9x faster than bf16 here); off: neither.",
    )
    batch_size: int = Field(32, ge=1, le=4096, description="Largest inference batch.")
    batch_wait_ms: int = Field(
        20,
        ge=0,
        description="How long a partial batch waits for more messages while another "
        "batch is in flight.",
    )
    decode_threads: int = Field(2, ge=1, le=64, description="Threads decoding images.")
    torch_threads: int = Field(0, ge=0, description="torch intra-op threads (0 = all cores).")
    model_poll_s: float = Field(
        5.0, gt=0, description="How often inference workers check for a newly promoted model."
    )

    # --- crack maps (photos much larger than the model's patch) --------------------------
    map_min_side_factor: float = Field(
        2.0,
        gt=0,
        description="A photo in auto mode is mapped tile by tile when a side is more than "
        "this many times the model's training patch size; otherwise it is classified whole.",
    )
    map_tile: int = Field(
        0, ge=0, description="Tile side in photo pixels; 0 = the checkpoint's training patch."
    )
    map_overlap: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Fraction of a tile its neighbours overlap (0 = none, the measured best).",
    )
    map_min_region_tiles: int = Field(
        2,
        ge=1,
        description="A mapped photo is a crack when it has a region of at least this many "
        "connected crack tiles (one stray tile is not a crack).",
    )
    map_busy_batch: int = Field(
        2,
        ge=1,
        description="Largest forward pass of map tiles while photos classified whole are "
        "arriving (a photo waits for one such pass at most); the full batch size otherwise.",
    )
    map_time_budget_s: float = Field(
        300.0, gt=0, description="A photo still being mapped after this long fails (map_timeout)."
    )
    map_engine: Literal["tiles", "dense"] = Field(
        "tiles",
        description="tiles: every tile through the model on its own. dense: the network run "
        "fully convolutionally over blocks of the photo, every tile of a block at once (its "
        "stride rounded to whole 32 px cells of the network; worth it with overlap; see the "
        "README's parity figures before turning it on).",
    )
    map_dense_block: int = Field(
        448,
        ge=224,
        le=4096,
        description="Side in network pixels of one dense-map block (one forward pass): larger "
        "shares more work between tiles, smaller keeps single photos' waits short.",
    )

    # --- image references ---------------------------------------------------------------
    allowed_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="Local folders images may be read from (JSON list or comma-separated); "
        "empty = local paths refused.",
    )
    max_image_bytes: int = Field(20 * 1024 * 1024, ge=1, description="Largest image file.")
    max_image_pixels: int = Field(50_000_000, ge=1, description="Largest width x height.")
    image_formats: Annotated[list[ImageFormat], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_IMAGE_FORMATS),
        min_length=1,
        description="Image formats decoded (JSON list or comma-separated; JPEG includes "
        "MPO): JPEG, MPO, PNG, WEBP, TIFF; BMP and GIF only when listed.",
    )
    http_timeout_s: float = Field(
        10.0,
        gt=0,
        description="Connect/read timeout for http(s); a whole fetch, redirects and DNS "
        "included, ends within 3x this.",
    )
    allow_private_urls: bool = Field(
        False, description="Allow http(s) URLs resolving to private/loopback addresses."
    )
    s3_endpoint_url: str | None = Field(
        None, description="S3-compatible endpoint (MinIO, Ceph); AWS_* variables for keys."
    )

    # --- artifacts: checkpoints and run reports -------------------------------------------
    artifact_store: str = Field(
        "postgres",
        description="Where training runs store checkpoints and reports for every worker: "
        "postgres (in the database, chunked; nothing to set up), s3://bucket/prefix "
        "(CRACKQ_S3_ENDPOINT_URL, AWS_* keys) or file:///dir (a local or shared folder).",
    )
    model_cache_dir: Path | None = Field(
        None,
        description="Where workers keep checkpoints fetched from the artifact store; "
        "empty = CRACKQ_DATA_DIR/cache/models.",
    )
    model_cache_mb: int = Field(
        2048,
        ge=0,
        description="Size limit of the model cache: least recently used versions are "
        "evicted past it, never the one being served.",
    )

    # --- training -----------------------------------------------------------------------
    training_time_limit_s: int = Field(4 * 3600, ge=60, description="Hard limit per run.")
    auto_promote: bool = Field(
        True, description="Promote a finished run if it beats the promoted model."
    )
    promote_auc_margin: float = Field(
        0.0,
        ge=-1,
        le=1,
        description="A finished run beats the promoted model when its validation AUC is at "
        "least the promoted model's AUC on the same photos plus this margin (accuracy when "
        "an AUC is undefined); 0 = a tie promotes, negative = tolerate a drop.",
    )
    promote_max_group_drop: float | None = Field(
        None,
        ge=0,
        le=1,
        description="With manifest groups: a finished run beats the promoted model only if "
        "its worst group's accuracy is at most this much below the promoted model's worst "
        "group; empty = not checked.",
    )

    # --- promotion gates: figures from shadowed traffic (crackq models compare) ----------
    promote_min_shadowed: int = Field(
        0,
        ge=0,
        description="A version is promoted only after scoring at least this many live "
        "photos in shadow (crackq models shadow); 0 = no minimum.",
    )
    promote_max_flip_rate: float | None = Field(
        None,
        ge=0,
        le=1,
        description="A version is promoted only when it changes the label of at most this "
        "share of its shadowed photos; empty = no limit.",
    )
    promote_require_labelled_accuracy: bool = Field(
        False,
        description="A version is promoted only when it is at least as accurate as the live "
        "answers on its shadowed photos that operators labelled (crackq label).",
    )

    # --- the review queue (README "Review queue") ------------------------------------------
    review: bool = Field(
        True,
        description="Inference workers put photos in the review queue by its rules when "
        "they store them (crackq review); false = none enter.",
    )
    review_band: float = Field(
        0.15,
        ge=0,
        le=0.5,
        description="A photo whose crack probability is within 0.5 +- this enters as "
        "uncertain; a mapped photo with a counted region whose strongest tile is within it, "
        "or crack tiles but no region that counts, as borderline_map; 0 = neither.",
    )
    review_sample_rate: float = Field(
        0.01,
        ge=0,
        le=1,
        description="Share of confident photos (no rule picked them) drawn for review as "
        "sample; 0 = none.",
    )
    review_sample_per_hour: int = Field(
        20,
        ge=0,
        description="At most this many sample photos enter in any hour, across every worker.",
    )

    # --- self-healing: training runs and unacknowledged messages --------------------------
    training_max_time_limit_s: int = Field(
        12 * 3600,
        ge=60,
        description="Largest time limit a run may ask for (--time-limit-s); a longer one "
        "is refused when the run is submitted.",
    )
    run_heartbeat_s: float = Field(
        10.0, gt=0, description="How often a running training run records a heartbeat."
    )
    run_dead_after_s: float = Field(
        150.0,
        gt=0,
        description="A running training run without a heartbeat for this long is marked "
        "failed (its worker died); any live worker, and `crackq finetune status/list`, sweep.",
    )
    self_heal: bool = Field(
        True,
        description="Workers put back on the queue the unacknowledged messages of workers "
        "that died, and re-send rows whose message was lost (see README, Self-healing).",
    )
    holds_heartbeat_s: float = Field(
        5.0,
        gt=0,
        description="How often each worker publishes the delivery tags it holds unacked.",
    )
    holds_ttl_s: float = Field(
        30.0,
        gt=0,
        description="A worker silent this long is dead: unacked messages no live worker "
        "holds, delivered at least this long ago, go back to the queue. Exceeds "
        "CRACKQ_HOLDS_HEARTBEAT_S a few times over.",
    )
    sweep_s: float = Field(
        15.0,
        gt=0,
        description="How often workers sweep: dead training runs, and (one worker at a "
        "time, by a Redis lock) orphaned and lost inference messages.",
    )
    requeue_lost_after_s: float = Field(
        600.0,
        gt=0,
        description="A row queued this long whose message is neither queued nor held "
        "unacked in Redis is re-sent (two sweeps in a row must find it so).",
    )

    # --- re-scoring stored rows with another version (crackq rescore) ---------------------
    rescore_window: int = Field(
        16,
        ge=1,
        description="crackq rescore sends only while fewer than this many messages, live "
        "and re-score, wait in the inference queue or are held unacked by workers.",
    )
    rescore_rate: float = Field(
        0.0,
        ge=0,
        description="crackq rescore sends at most this many photos per second; 0 = as fast "
        "as CRACKQ_RESCORE_WINDOW allows.",
    )
    rescore_busy_share: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Largest share of a worker's forward passes' time that re-score passes "
        "take while live photos arrive (after a re-score pass, the next waits until live "
        "photos could have had the rest); 1 = no cap. Without live photos re-scores run at "
        "full speed.",
    )

    # --- operations ---------------------------------------------------------------------
    worker_concurrency: int = Field(
        0, ge=0, description="Inference worker threads; 0 = automatic (2)."
    )
    allocator: Literal["auto", "tcmalloc", "jemalloc", "system"] = Field(
        "auto", description="Memory allocator preloaded by `crackq worker`."
    )
    log_level: str = Field("INFO", description="Logging level.")
    flower_port: int = Field(5555, description="Port for `crackq flower`.")
    flower_address: str = Field(
        "127.0.0.1",
        description="Address `crackq flower` listens on; any but loopback needs basic auth.",
    )
    flower_basic_auth: SecretStr | None = Field(
        None, description="`user:password` for Flower's basic auth (passed as FLOWER_BASIC_AUTH)."
    )

    ui_address: str = Field(
        "127.0.0.1",
        description="Address `crackq ui` (the console) listens on; any but loopback needs "
        "CRACKQ_UI_USERS or CRACKQ_UI_USERS_FILE.",
    )
    ui_port: int = Field(8600, ge=1, le=65535, description="Port of `crackq ui`.")
    ui_users: SecretStr | None = Field(
        None,
        description="The console's accounts, `name:role:password` separated by commas; role "
        "viewer (reads), reviewer (+ answers the review queue) or operator (+ promotes and "
        "rolls back models); the password plain or a hash from `crackq ui --hash-password`. "
        "Unset on loopback: no login, the local user is an operator.",
    )
    ui_users_file: Path | None = Field(
        None,
        description="File of console accounts, one `name:role:password` per line (a "
        "Docker/K8s secret); read with CRACKQ_UI_USERS.",
    )
    ui_secret_key: SecretStr | None = Field(
        None,
        description="Key that signs the console's session cookies; unset: a random one per "
        "start (everyone logs in again after a restart).",
    )
    ui_read_role: str = Field(
        "crackq_reporting",
        description="Database role the console's read-only pages switch to (SET ROLE); empty: "
        "read as the connecting user, in read-only transactions.",
    )

    metrics_port: int = Field(
        9808,
        ge=0,
        le=65535,
        description="Port of every worker's /metrics (Prometheus), /healthz and /readyz; "
        "the next free one of the following 15 when taken; 0 = no endpoint.",
    )
    metrics_address: str = Field(
        "127.0.0.1",
        description="Address the metrics and health endpoint listens on (0.0.0.0 in "
        "containers, for Prometheus and healthchecks from outside).",
    )
    metrics_db_s: float = Field(
        10.0,
        gt=0,
        description="Scrapes read row, dead-letter and run counts from PostgreSQL at most "
        "this often (seconds); queue depth is read from Redis on every scrape.",
    )

    @field_validator("allowed_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: object) -> object:
        if isinstance(value, str):
            if value.strip().startswith("["):
                return json.loads(value)
            return [p for p in (s.strip() for s in value.split(",")) if p]
        return value

    @field_validator("image_formats", mode="before")
    @classmethod
    def _split_formats(cls, value: object) -> object:
        value = cls._split_roots(value)
        if isinstance(value, list):
            return [v.strip().upper() if isinstance(v, str) else v for v in value]
        return value

    @field_validator("artifact_store")
    @classmethod
    def _check_store(cls, value: str) -> str:
        value = value.strip()
        if value.startswith("s3://") and not value[len("s3://") :].strip("/"):
            raise ValueError("CRACKQ_ARTIFACT_STORE=s3:// needs a bucket: s3://bucket/prefix")
        if "://" in value and not value.startswith(("s3://", "file://")):
            raise ValueError(
                f"CRACKQ_ARTIFACT_STORE={value!r}: expected postgres, s3://bucket/prefix, "
                "file:///dir or a folder"
            )
        return value or "postgres"

    def models_cache(self) -> Path:
        """The model cache folder (CRACKQ_MODEL_CACHE_DIR, else CRACKQ_DATA_DIR/cache/models)."""
        return self.model_cache_dir or self.data_dir / "cache" / "models"

    def broker(self) -> str:
        """The broker URL, read from its secret file when one is configured."""
        if self.broker_url_file is not None:
            return self.broker_url_file.read_text().strip()
        return self.broker_url.get_secret_value()

    def database(self) -> str:
        """The database URL, read from its secret file when one is configured."""
        if self.database_url_file is not None:
            return self.database_url_file.read_text().strip()
        return self.database_url.get_secret_value()


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
