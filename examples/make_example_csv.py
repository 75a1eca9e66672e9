"""Write examples/my_sensor.csv: a small three-sensor recording with labelled anomalies.

600 rows, one per minute: a machine that runs in 40-minute cycles, seen by a temperature,
a vibration and a pressure sensor. Three anomalies sit in the last fifth of the rows
(the test part under tsad's default split 0.6/0.2/0.2): a pressure spike, a stuck
temperature sensor and a burst of vibration. `label` is 1 on those rows, 0 elsewhere.

    python examples/make_example_csv.py            # rewrites examples/my_sensor.csv
"""

from pathlib import Path

import numpy as np
import pandas as pd

ROWS = 600
CYCLE = 40.0


def make(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    minute = np.arange(ROWS)
    phase = 2 * np.pi * minute / CYCLE
    temperature = 60 + 4 * np.sin(phase) + 0.004 * minute + rng.normal(0, 0.3, ROWS)
    vibration = 1.0 + 0.4 * np.abs(np.sin(phase)) + rng.normal(0, 0.05, ROWS)
    pressure = 2.0 + 0.3 * np.cos(phase) + rng.normal(0, 0.03, ROWS)
    label = np.zeros(ROWS, dtype=int)

    pressure[500:503] += 1.5                   # pressure spike
    temperature[530:550] = temperature[530]    # stuck sensor: a flat line where it should oscillate
    vibration[570:585] += rng.normal(0, 0.5, 15)  # vibration burst
    for start, stop in ((500, 503), (530, 550), (570, 585)):
        label[start:stop] = 1

    timestamp = pd.date_range("2024-03-01 08:00", periods=ROWS, freq="min")
    return pd.DataFrame({"timestamp": timestamp.strftime("%Y-%m-%d %H:%M:%S"), "temperature": temperature.round(3),
                         "vibration": vibration.round(4), "pressure": pressure.round(4), "label": label})


if __name__ == "__main__":
    target = Path(__file__).resolve().parent / "my_sensor.csv"
    make().to_csv(target, index=False)
    print(f"wrote {target}")
