using System.Diagnostics.CodeAnalysis;

namespace Collab.Server.Sessions;

/// <summary>
/// One connection's subscriptions keyed by document id (<see cref="Subscription.DocId"/>). Most connections
/// subscribe to one document, so the first subscription is held inline and a dictionary exists only while
/// there are two or more: an idle connection on one document does not carry an empty-ish dictionary (about
/// 220 bytes with its arrays). A mutable struct kept in a field of its owner, which guards it with its lock.
/// </summary>
internal struct SubscriptionSet
{
    private Subscription? _single;
    private Dictionary<string, Subscription>? _many;

    public readonly int Count => _many?.Count ?? (_single is null ? 0 : 1);

    public readonly bool TryGetValue(string docId, [NotNullWhen(true)] out Subscription? subscription)
    {
        if (_many is not null)
        {
            return _many.TryGetValue(docId, out subscription);
        }

        subscription = _single is not null && string.Equals(_single.DocId, docId, StringComparison.Ordinal) ? _single : null;
        return subscription is not null;
    }

    /// <summary>The subscription of the document whose id is <paramref name="docId"/>, looked up without making a string of it.</summary>
    public readonly bool TryGetValue(ReadOnlySpan<char> docId, [NotNullWhen(true)] out Subscription? subscription)
    {
        if (_many is not null)
        {
            return _many.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(docId, out subscription);
        }

        subscription = _single is not null && docId.SequenceEqual(_single.DocId) ? _single : null;
        return subscription is not null;
    }

    /// <summary>Adds the subscription, or replaces the one of the same document.</summary>
    public void Set(Subscription subscription)
    {
        if (_many is not null)
        {
            _many[subscription.DocId] = subscription;
        }
        else if (_single is null || string.Equals(_single.DocId, subscription.DocId, StringComparison.Ordinal))
        {
            _single = subscription;
        }
        else
        {
            _many = new Dictionary<string, Subscription>(StringComparer.Ordinal)
            {
                [_single.DocId] = _single,
                [subscription.DocId] = subscription,
            };
            _single = null;
        }
    }

    public bool Remove(string docId, [NotNullWhen(true)] out Subscription? subscription)
    {
        if (_many is null)
        {
            if (!TryGetValue(docId, out subscription))
            {
                return false;
            }

            _single = null;
            return true;
        }

        if (!_many.Remove(docId, out subscription))
        {
            return false;
        }

        if (_many.Count == 1)
        {
            // Back to one: give the dictionary up rather than keep it for the rest of the connection.
            foreach (Subscription remaining in _many.Values)
            {
                _single = remaining;
            }

            _many = null;
        }

        return true;
    }

    /// <summary>Adds every subscription to <paramref name="destination"/>.</summary>
    public readonly void CopyTo(List<Subscription> destination)
    {
        if (_many is not null)
        {
            destination.AddRange(_many.Values);
        }
        else if (_single is not null)
        {
            destination.Add(_single);
        }
    }

    public void Clear()
    {
        _single = null;
        _many = null;
    }
}
