"""Inputs for quantity-vectors: curated edge cases, then seeded random strings over the
quantity alphabet (plus characters that must be refused). One JSON string per line.

    python3 inputs.py | go run . > ../../tests/fixtures/quantity-vectors.json
"""

import json
import random

CURATED = [
    "0",
    "1",
    "1E",
    "10E",
    "1E3",
    "1e3",
    "1e",
    "1E-",
    "1e-3",
    "1E+3",
    "1Ei",
    "9Ei",
    "8Ei",
    "1Ki",
    "1.5Gi",
    "0.5Gi",
    "500m",
    "0.1m",
    "0.5n",
    "3.001n",
    "0.0000000001",
    "1.",
    ".5",
    ".",
    "-",
    "+",
    "00",
    "-0",
    "Ki",
    "m",
    "e3",
    "1K",
    "1ki",
    "1mi",
    "1M5",
    "1KB",
    "1 Gi",
    "0x10",
    "1_000",
    "1,5",
    "1.1.M",
    "1+1.0M",
    "0.1mi",
    "0.1am",
    "aoeu",
    ".5i",
    "1i",
    "-3.01i",
    "-3.01e-",
    " 1",
    "1 ",
    "",
    "9999999999999999999",
    "10000000000000000000.1",
    "9223372036854775807Ki",
    "1E9223372036854775807",
    "1e99",
    "1e-99",
    "-1",
    "-1.5Gi",
    "1.G",
    "12E",
    "1P",
    "2T",
    "3G",
    "4M",
    "5k",
    "6u",
    "7n",
    "1Pi",
    "1Ti",
    "1Mi",
    "0.000000000001Ki",
    "123456789012345678",
    "1234567890123456789",
    "0.000001Mi",
    "1.5e3",
    "1.5E-3",
    "+1.5e+3",
    "²",
    "①",
    "٣",
    "１",
    "1\u00a0",
    "1e3e3",
    "1Ee",
    "1ee3",
    "1eE3",
    "1E-0",
    "1e00000000000000000000000003",
    "00001",
    "0.0",
    "1.0Ki",
    # digitless numbers: zero on upstream's fast path, refused on its big-decimal path
    ".5Pi",
    "5.Ei",
    "5.Pi",
    ".Pi",
    "1.Pi",
    "0.Pi",
    "00Pi",
    "-00Pi",
    ".Ei",
    "1234567890123456789.",
    ".1234567890123456789",
    "-.1234567890123456789",
    ".0000000001",
    "-.0000000001",
    ".e-10",
    "0.e-10",
    "1.e-10",
    "5.e-10",
    ".5e-10",
    "-Ei",
    "0Ei",
    "1.Ei",
    "9.Ei",
    "e-10",
    "-e-10",
    "+e-10",
    ".Gi",
    "-Pi",
    "Pi",
    "-.Pi",
    "-0Pi",
    "-Ti",
    "Ti",
    "-e-9",
    "e-9",
    "-0e-10",
]
ALPHABET = "0123456789.+-eEinumkKMGTP"


def main() -> None:
    rng = random.Random(20261130)
    inputs = list(CURATED)
    for _ in range(3000):
        length = rng.randint(1, 8)
        inputs.append("".join(rng.choice(ALPHABET) for _ in range(length)))
    for _ in range(1000):
        # number-shaped: sign, digits, fraction, suffix
        sign = rng.choice(["", "", "+", "-"])
        whole = "".join(rng.choice("0123456789") for _ in range(rng.randint(0, 4)))
        frac = (
            ("." + "".join(rng.choice("0123456789") for _ in range(rng.randint(0, 4))))
            if rng.random() < 0.4
            else ""
        )
        suffix = rng.choice(
            [
                "",
                "m",
                "k",
                "M",
                "G",
                "T",
                "P",
                "E",
                "n",
                "u",
                "Ki",
                "Mi",
                "Gi",
                "Ti",
                "Pi",
                "Ei",
                "e3",
                "E-2",
                "e+1",
                "E",
                "e",
            ]
        )
        inputs.append(sign + whole + frac + suffix)
    for text in dict.fromkeys(inputs):
        print(json.dumps(text))


if __name__ == "__main__":
    main()
