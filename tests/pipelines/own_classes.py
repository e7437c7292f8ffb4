"""A step returns an instance of a class of this file; the next step checks what it received."""

from dataclasses import dataclass

from orchestrator import pipeline, step


@dataclass
class Config:
    depth: int


@step
def make(depth: int) -> Config:
    return Config(depth)


@step
def check(cfg: Config, tag: str) -> dict:
    return {"isinstance": isinstance(cfg, Config), "equal": cfg == Config(cfg.depth), "tag": tag}


@pipeline
def own_classes(depth: int = 3, tag: str = "a"):
    return check(make(depth), tag)
