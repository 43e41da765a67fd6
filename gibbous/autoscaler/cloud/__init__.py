"""Cloud providers behind one small interface (`base.CloudProvider`)."""
