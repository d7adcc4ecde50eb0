"""The campaign's simulation task, run by pool workers::

    mofka-py worker --pool campaign --method simulate=mofka_py.apps.campaign.tasks:simulate

``simulate(smiles)`` computes the vertical ionization potential (IP) of a molecule with
GFN2-xTB: RDKit builds conformers (``AddHs`` + ETKDG embedding + MMFF94 optimisation), and on
the lowest-energy one two GFN2-xTB single points give the IP: E(cation) - E(neutral) minus
xtb's empirical GFN2 shift of 4.8455 eV (what ``xtb --vip`` prints as "delta SCC IP"; the
cation is a doublet). Without xtb (``engine="mmff"``, or xtb not importable) it computes
an RDKit-only property instead: the dipole moment (Debye) from MMFF94 partial charges on the
lowest-energy MMFF94 conformer.

A molecule that cannot be built or whose SCF does not converge raises ``ValueError``: the pool
classifies that as deterministic (another attempt would fail the same way), so it is not
retried.
"""
from __future__ import annotations

import os
import time
from typing import Any, Dict

HARTREE_EV = 27.211386245988
BOHR_PER_ANGSTROM = 1.0 / 0.529177210903
DEBYE_PER_E_ANGSTROM = 4.80320471
GFN2_IP_SHIFT_EV = 4.8455   # xtb's empirical IP shift for GFN2-xTB (ipeashift)

PROPERTIES = {
    "xtb": ("ip", "ionization potential", "eV", "GFN2-xTB vertical IP (E(cation) - E(neutral) - 4.8455 eV)"),
    "mmff": ("dipole", "dipole moment", "D", "dipole moment from MMFF94 partial charges (RDKit only)"),
}


def xtb_available() -> bool:
    """True when xtb-python can be imported here (its wheel is Linux x86_64 only)."""
    try:
        import xtb.interface  # noqa: F401
    except Exception:
        return False
    return True


def _conformers(smiles: str, n: int, seed: int):
    from rdkit import Chem, RDLogger
    from rdkit.Chem import AllChem

    RDLogger.DisableLog("rdApp.*")  # a failure is reported as the task's error, not printed by the worker

    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise ValueError(f"RDKit cannot parse {smiles!r}")
    mol = Chem.AddHs(mol)
    params = AllChem.ETKDGv3()
    params.randomSeed = seed
    params.maxIterations = 50   # an impossible geometry fails in well under a second, not in seconds
    ids = list(AllChem.EmbedMultipleConfs(mol, numConfs=n, params=params))
    if not ids:
        params.useRandomCoords = True
        ids = list(AllChem.EmbedMultipleConfs(mol, numConfs=n, params=params))
    if not ids:
        raise ValueError(f"RDKit could not embed {smiles!r} in 3D")
    if not AllChem.MMFFHasAllMoleculeParams(mol):
        raise ValueError(f"MMFF94 has no parameters for {smiles!r}")
    energies = [e for _, e in AllChem.MMFFOptimizeMoleculeConfs(mol, maxIters=500)]
    return mol, ids, energies


def _xtb_energy(numbers, positions, charge: int, uhf: int) -> float:
    from xtb.interface import Calculator, XTBException
    from xtb.libxtb import VERBOSITY_MUTED
    from xtb.utils import get_method

    calc = Calculator(get_method("GFN2-xTB"), numbers, positions, charge=charge, uhf=uhf)
    calc.set_verbosity(VERBOSITY_MUTED)
    try:
        return float(calc.singlepoint().get_energy())
    except XTBException as exc:
        raise ValueError(f"GFN2-xTB single point failed (charge {charge}): {exc}") from None


def _ip_xtb(mol, cid: int) -> Dict[str, Any]:
    import numpy as np

    numbers = np.array([a.GetAtomicNum() for a in mol.GetAtoms()])
    electrons = int(numbers.sum())
    pos = mol.GetConformer(cid).GetPositions() * BOHR_PER_ANGSTROM
    e0 = _xtb_energy(numbers, pos, 0, electrons % 2)
    e1 = _xtb_energy(numbers, pos, 1, (electrons - 1) % 2)   # one electron fewer: a doublet
    return {"value": (e1 - e0) * HARTREE_EV - GFN2_IP_SHIFT_EV, "e_neutral": e0, "e_cation": e1}


def _dipole_mmff(mol, cid: int) -> Dict[str, Any]:
    import numpy as np
    from rdkit.Chem import AllChem

    props = AllChem.MMFFGetMoleculeProperties(mol)
    q = np.array([props.GetMMFFPartialCharge(i) for i in range(mol.GetNumAtoms())])
    pos = mol.GetConformer(cid).GetPositions()
    mu = np.linalg.norm((q[:, None] * (pos - pos.mean(0))).sum(0)) * DEBYE_PER_E_ANGSTROM
    return {"value": float(mu)}


def simulate(smiles: str, engine: str = "xtb", conformers: int = 4, seed: int = 42) -> Dict[str, Any]:
    """The campaign's property of ``smiles`` (see the module docstring): a dict with ``value``,
    ``property``, ``unit``, ``engine`` (what actually ran), ``atoms``, ``seconds``.

    >>> simulate("c1ccccc1")["value"]   # benzene: about 9.3 eV (experiment 9.24)   # doctest: +SKIP
    """
    t0 = time.perf_counter()
    if engine not in PROPERTIES:
        raise ValueError(f"engine must be one of {sorted(PROPERTIES)} (got {engine!r})")
    if engine == "xtb" and not xtb_available():
        engine = "mmff"
    mol, ids, energies = _conformers(smiles, max(1, int(conformers)), seed)
    best = min(range(len(ids)), key=lambda k: energies[k])   # the lowest MMFF94 conformer
    out = _ip_xtb(mol, ids[best]) if engine == "xtb" else _dipole_mmff(mol, ids[best])
    out["e_mmff"] = float(energies[best])
    key, name, unit, _ = PROPERTIES[engine]
    out.update(smiles=smiles, property=key, unit=unit, engine=engine, atoms=mol.GetNumAtoms(),
               conformers=len(ids), seconds=time.perf_counter() - t0, pid=os.getpid())
    return out
