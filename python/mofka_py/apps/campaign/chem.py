"""The campaign's generator: new molecules by mutating and assembling SMILES with RDKit.

Molecules are edited as kekulized graphs of heavy atoms (hydrogens implicit): change an
element, add or remove an atom, insert one into a chain, change a bond order, close a 5- or
6-membered ring, or attach a fragment (assembly). An edit is kept only if RDKit can sanitize
the result and it stays a small neutral closed-shell molecule (``max_atoms`` heavy atoms, no
rings smaller than 5 or larger than 7, no bridged rings or triple bonds in rings, no
peroxides, halogens on carbon only, one fragment) — the kind GFN2-xTB handles in a fraction
of a second.

Example::

    gen = Generator(load_seeds(), max_atoms=14, rng=random.Random(1))
    gen.random_molecule()           # a seed with 1-3 random edits
    gen.mutate("CC(=O)Nc1ccc(O)cc1")  # one edit of paracetamol (or None if the edit failed)
"""
from __future__ import annotations

import random
from importlib import resources
from typing import Callable, Iterable, List, Optional, Sequence

import numpy as np

# Fragments attached by the assembly edit, written with the attachment atom first.
FRAGMENTS = ("O", "N", "C", "F", "Cl", "C#N", "OC", "C(F)(F)F", "C(=O)O", "C(N)=O", "C=O", "S", "c1ccccc1",
             "c1ccncc1", "c1ccoc1", "NC(C)=O")
ELEMENTS = (6, 7, 8, 9, 16, 17)            # C N O F S Cl
CHAIN_ELEMENTS = (6, 6, 6, 7, 8)          # inserted / appended atoms, carbon most often


def load_seeds() -> List[str]:
    """The seed set shipped with the package (``seeds.smi``): canonical SMILES."""
    from rdkit import Chem

    text = resources.files(__package__).joinpath("seeds.smi").read_text()
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(Chem.MolToSmiles(Chem.MolFromSmiles(line.split()[0])))
    return out


def canonical(smiles: str) -> Optional[str]:
    """Canonical SMILES, or None when RDKit cannot parse it."""
    from rdkit import Chem

    mol = Chem.MolFromSmiles(smiles)
    return None if mol is None else Chem.MolToSmiles(mol)


class Generator:
    """Proposes molecules by random edits of parents (see the module docstring)."""

    def __init__(self, seeds: Sequence[str], *, max_atoms: int = 14, rng: Optional[random.Random] = None):
        from rdkit import RDLogger

        RDLogger.DisableLog("rdApp.*")  # failed edits are expected; RDKit would print each one
        self.seeds = list(seeds)
        self.max_atoms = max_atoms
        self.rng = rng or random.Random()
        self._edits: List[Callable] = [self._change_element, self._append_atom, self._delete_atom,
                                       self._insert_atom, self._change_bond, self._close_ring, self._attach]

    # ---------------------------------------------------------------- public
    def mutate(self, smiles: str, tries: int = 10) -> Optional[str]:
        """One random edit of ``smiles`` that gives a different acceptable molecule, or None."""
        from rdkit import Chem

        mol = Chem.MolFromSmiles(smiles)
        if mol is None:
            return None
        for _ in range(tries):
            rw = Chem.RWMol(mol)
            Chem.Kekulize(rw, clearAromaticFlags=True)
            try:
                if not self.rng.choice(self._edits)(rw):
                    continue
                out = self._accept(rw)
            except Exception:  # RDKit raises on impossible edits (valence, kekulization)
                continue
            if out is not None and out != smiles:
                return out
        return None

    def random_molecule(self, edits: Iterable[int] = (1, 2, 3)) -> str:
        """A random seed with a random number of edits (random search's proposal)."""
        while True:
            smi = self.rng.choice(self.seeds)
            for _ in range(self.rng.choice(tuple(edits))):
                smi = self.mutate(smi) or smi
            if smi not in self.seeds:
                return smi

    def offspring(self, parents: Sequence[str], n: int, exclude: Optional[set] = None) -> List[str]:
        """Up to ``n`` distinct new molecules, each one or two edits from a random parent."""
        exclude = exclude if exclude is not None else set()
        out: List[str] = []
        seen = set(exclude)
        for _ in range(n * 4):
            if len(out) >= n:
                break
            smi = self.mutate(self.rng.choice(parents))
            if smi is not None and self.rng.random() < 0.3:
                smi = self.mutate(smi) or smi
            if smi is not None and smi not in seen:
                seen.add(smi)
                out.append(smi)
        return out

    # ---------------------------------------------------------------- checks
    def _accept(self, rw) -> Optional[str]:
        from rdkit import Chem

        mol = rw.GetMol()
        Chem.SanitizeMol(mol)
        n = mol.GetNumHeavyAtoms()
        if n < 3 or n > self.max_atoms:
            return None
        if any(a.GetFormalCharge() or a.GetNumRadicalElectrons() for a in mol.GetAtoms()):
            return None
        double = Chem.BondType.DOUBLE
        if any(a.GetAtomicNum() in (6, 7) and sum(b.GetBondType() == double for b in a.GetBonds()) > 1
               for a in mol.GetAtoms()):
            return None  # cumulated double bonds (allenes), mostly in rings that cannot be embedded
        triple = Chem.BondType.TRIPLE
        for b in mol.GetBonds():
            a, z = b.GetBeginAtom().GetAtomicNum(), b.GetEndAtom().GetAtomicNum()
            if (a in (9, 17) and z != 6) or (z in (9, 17) and a != 6) or a == z == 8:
                return None  # peroxides, hypohalites, N-halides: unstable, not worth a simulation
            if b.GetBondType() == triple and (b.IsInRing() or 16 in (a, z)):
                return None  # a triple bond in a small ring cannot be embedded
        rings = [set(r) for r in mol.GetRingInfo().AtomRings()]
        if any(len(r) < 5 or len(r) > 7 for r in rings):
            return None
        # No bridged ring systems (rings sharing more than a bond): mostly unembeddable or strained.
        if any(len(a & b) > 2 for k, a in enumerate(rings) for b in rings[k + 1:]):
            return None
        smi = Chem.MolToSmiles(mol)
        if "." in smi:
            return None
        return smi if Chem.MolFromSmiles(smi) is not None else None

    @staticmethod
    def _free_h(atom) -> int:
        atom.UpdatePropertyCache(strict=False)
        return atom.GetTotalNumHs()

    # ---------------------------------------------------------------- edits (False: not applicable)
    def _change_element(self, rw) -> bool:
        atom = rw.GetAtomWithIdx(self.rng.randrange(rw.GetNumAtoms()))
        new = self.rng.choice(ELEMENTS)
        if new == atom.GetAtomicNum() or (new in (9, 17) and atom.GetDegree() > 1):
            return False
        atom.SetAtomicNum(new)
        atom.SetNoImplicit(False)
        atom.SetNumExplicitHs(0)
        return True

    def _append_atom(self, rw) -> bool:
        from rdkit import Chem

        cands = [a.GetIdx() for a in rw.GetAtoms() if self._free_h(a) > 0]
        if not cands:
            return False
        i = self.rng.choice(cands)
        j = rw.AddAtom(Chem.Atom(self.rng.choice(CHAIN_ELEMENTS)))
        order = Chem.BondType.DOUBLE if self.rng.random() < 0.15 and self._free_h(rw.GetAtomWithIdx(i)) > 1 \
            else Chem.BondType.SINGLE
        rw.AddBond(i, j, order)
        return True

    def _delete_atom(self, rw) -> bool:
        ends = [a.GetIdx() for a in rw.GetAtoms() if a.GetDegree() == 1]
        if not ends or rw.GetNumAtoms() <= 3:
            return False
        rw.RemoveAtom(self.rng.choice(ends))
        return True

    def _insert_atom(self, rw) -> bool:
        from rdkit import Chem

        bonds = [b for b in rw.GetBonds() if b.GetBondType() == Chem.BondType.SINGLE]
        if not bonds:
            return False
        b = self.rng.choice(bonds)
        i, j = b.GetBeginAtomIdx(), b.GetEndAtomIdx()
        rw.RemoveBond(i, j)
        k = rw.AddAtom(Chem.Atom(self.rng.choice(CHAIN_ELEMENTS)))
        rw.AddBond(i, k, Chem.BondType.SINGLE)
        rw.AddBond(k, j, Chem.BondType.SINGLE)
        return True

    def _change_bond(self, rw) -> bool:
        from rdkit import Chem

        if rw.GetNumBonds() == 0:
            return False
        b = rw.GetBondWithIdx(self.rng.randrange(rw.GetNumBonds()))
        now = b.GetBondType()
        if now == Chem.BondType.SINGLE:
            b.SetBondType(Chem.BondType.DOUBLE if self.rng.random() < 0.85 else Chem.BondType.TRIPLE)
        elif now in (Chem.BondType.DOUBLE, Chem.BondType.TRIPLE):
            b.SetBondType(Chem.BondType.SINGLE)
        else:
            return False
        return True

    def _close_ring(self, rw) -> bool:
        from rdkit import Chem

        dist = Chem.GetDistanceMatrix(rw)
        free = [a.GetIdx() for a in rw.GetAtoms() if self._free_h(a) > 0 and not a.IsInRing()]
        pairs = [(i, j) for k, i in enumerate(free) for j in free[k + 1:] if dist[i][j] in (4, 5)]
        if not pairs:
            return False
        i, j = self.rng.choice(pairs)
        rw.AddBond(i, j, Chem.BondType.SINGLE)
        return True

    def _attach(self, rw) -> bool:
        from rdkit import Chem

        cands = [a.GetIdx() for a in rw.GetAtoms() if self._free_h(a) > 0]
        if not cands:
            return False
        frag = Chem.MolFromSmiles(self.rng.choice(FRAGMENTS))
        Chem.Kekulize(frag, clearAromaticFlags=True)
        i = self.rng.choice(cands)
        offset = rw.GetNumAtoms()
        combined = Chem.RWMol(Chem.CombineMols(rw, frag))
        combined.AddBond(i, offset, Chem.BondType.SINGLE)
        # Replace rw's content with the combined molecule (RWMol edits are in place).
        for atom in combined.GetAtoms():
            if atom.GetIdx() >= offset:
                rw.AddAtom(atom)
        for bond in combined.GetBonds():
            a, b = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
            if a >= offset or b >= offset:
                rw.AddBond(a, b, bond.GetBondType())
        return True


def fingerprints(smiles: Sequence[str], radius: int = 2, bits: int = 2048) -> np.ndarray:
    """Morgan fingerprints (ECFP4 by default) as a uint8 matrix, one row per molecule."""
    from rdkit import Chem
    from rdkit.Chem import rdFingerprintGenerator

    gen = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=bits)
    out = np.zeros((len(smiles), bits), dtype=np.uint8)
    for k, smi in enumerate(smiles):
        mol = Chem.MolFromSmiles(smi)
        if mol is not None:
            out[k] = gen.GetFingerprintAsNumPy(mol)
    return out
