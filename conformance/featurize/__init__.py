"""Featurisation shared by the data audits and the reference models.

One concept per module; everything here depends only on numpy, scipy, ase and vesin:

* :mod:`.switching` -- quintic switching function (C2 cutoff);
* :mod:`.neighbors` -- neighbour lists (vesin) of isolated, slab and bulk structures;
* :mod:`.descriptors` -- atom-centred density-expansion descriptors with analytic
  derivatives (:class:`~.descriptors.Descriptor`);
* :mod:`.repulsion` -- the fixed short-range pair repulsion of the linear fits;
* :mod:`.design` -- design matrix and normal equations of a linear model on the
  descriptors (energy, force and stress rows);
* :mod:`.ridge` -- ridge solve with a penalty relative to each column's scale;
* :mod:`.batch` -- the same quantities for many small structures at once (one
  vectorised pass per partition of a data set).

``reference_models`` builds on these modules; the suite never imports
``reference_models``.
"""
